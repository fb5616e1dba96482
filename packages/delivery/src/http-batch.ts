/**
 * Batch delivery over HTTP (a destination's `batch.maxMessages` above 1): one `POST` carries
 * several consecutive messages as a JSON array, each element with its own sequence, message id and
 * `Idempotency-Key`, and the request's headers give the range (docs/protocol.md, "Batch delivery
 * over HTTP"). Receivers de-duplicate per element, because a redelivered batch may cover another
 * range than the first attempt did.
 */
import { idempotencyKey, type DeliveryRequest } from './delivery.js';

/**
 * The `Idempotency-Key` (and `webhook-id`) of a batch: `<destination>:<first>-<last>`, the same on
 * every retry of that range. It never equals a single message's key (`<destination>:<n>:<id>`).
 */
export function batchIdempotencyKey(destination: string, first: number, last: number): string {
  return `${destination}:${first}-${last}`;
}

/**
 * The body of a batch, in sequence order:
 * `[{"sequence":n,"id":"<message id>","idempotencyKey":"<key>","payload":<payload>},…]`. Each
 * payload goes in as the JSON text it is (never re-encoded), as in a single delivery.
 * @throws RangeError for an empty batch.
 */
export function encodeBatchBody(requests: readonly DeliveryRequest[]): string {
  if (requests.length === 0) throw new RangeError('a batch holds at least one message');
  const elements = requests.map(
    (r) =>
      `{"sequence":${r.sequence},"id":${JSON.stringify(r.messageId)},` +
      `"idempotencyKey":${JSON.stringify(idempotencyKey(r))},"payload":${r.payload}}`,
  );
  return `[${elements.join(',')}]`;
}
