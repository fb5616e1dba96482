/**
 * Step 2 of a message at ingest: the requests that arrive in the same event-loop turn go to
 * Redis as one `ingest` script call (up to `ingest.maxBatch`), so ingest costs one round trip
 * per batch, not per message. Batches go out on one connection in arrival order and Redis
 * answers them in that order, so the order in which ingest answers 202 for a destination is the
 * order of its sequences.
 */
import type { ReseqConfig } from '@reseq/config';
import { faultPoint, MicroBatcher } from '@reseq/runtime';
import {
  toStoreError,
  writeIngestBatch,
  type IngestOutcome,
  type IngestRequest,
  type KeySchema,
  type ReseqRedis,
} from '@reseq/store';

/** The micro-batcher in front of the ingest script. */
export type IngestBatcher = MicroBatcher<IngestRequest, IngestOutcome>;

/** Creates ingest's batcher; its failures are the store's coded errors (503, 429). */
export function createIngestBatcher(
  redis: ReseqRedis,
  keys: KeySchema,
  settings: ReseqConfig['ingest'],
): IngestBatcher {
  return new MicroBatcher(async (requests: IngestRequest[]) => {
    try {
      const outcomes = await writeIngestBatch(redis, keys, requests, {
        idempotencyTtlSeconds: settings.idempotencyTtlSeconds,
        maxBacklog: settings.maxBacklog,
        destinationWindow: settings.destinationWindow,
      });
      // Crash tests: durable in Redis, no 202 sent yet.
      faultPoint('ingest-after-write');
      return outcomes;
    } catch (err) {
      throw toStoreError(err);
    }
  }, settings.maxBatch);
}
