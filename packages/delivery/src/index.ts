/**
 * Delivery adapters: how a settled, in-order result reaches its destination: HTTP, TCP and
 * PostgreSQL (exactly once), all behind the same {@link Delivery} interface.
 */
export { type Delivery, type DeliveryRequest, type DeliveryOutcome, idempotencyKey } from './delivery.js';
export { HttpDelivery } from './http-delivery.js';
export { batchIdempotencyKey, encodeBatchBody } from './http-batch.js';
export { TcpDelivery } from './tcp-delivery.js';
export { PostgresDelivery } from './postgres-delivery.js';
export {
  encodeAckLine,
  encodeMessageLine,
  parseAckLine,
  parseMessageLine,
  LineSplitter,
  LineTooLongError,
  type TcpMessageLine,
} from './tcp-framing.js';
export { startTcpReceiver, type TcpReceiver, type TcpReceiverOptions, type ReceivedLine } from './tcp-receiver.js';
export { createDelivery } from './create-delivery.js';
