/**
 * Delivery adapters: how a settled, in-order result reaches its destination. HTTP now; TCP and
 * PostgreSQL adapters join them behind the same {@link Delivery} interface.
 */
export { type Delivery, type DeliveryRequest, type DeliveryOutcome, idempotencyKey } from './delivery.js';
export { HttpDelivery } from './http-delivery.js';
export { createDelivery } from './create-delivery.js';
