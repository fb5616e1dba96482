/**
 * Step 2 of a message at ingest: the requests that arrive in the same event-loop turn go to
 * Redis as one `ingest` script call (up to `ingest.maxBatch`), so ingest costs one round trip
 * per batch, not per message. Batches go out on one connection in arrival order and Redis
 * answers them in that order, so the order in which ingest answers 202 for a destination is the
 * order of its sequences. With several shards (`RESEQ_SHARDS`), a batch is one call per shard it
 * touches, in parallel, and each batch is answered only after the one before it, so that order
 * still holds although another shard may answer one batch's part later than the next batch's.
 */
import type { ReseqConfig } from '@reseq/config';
import { faultPoint, MicroBatcher } from '@reseq/runtime';
import {
  toStoreError,
  writeShardedIngestBatch,
  type IngestRequest,
  type ReseqRedis,
  type Shards,
  type ShardedIngestOutcome,
} from '@reseq/store';

/** The micro-batcher in front of the ingest script. */
export type IngestBatcher = MicroBatcher<IngestRequest, ShardedIngestOutcome>;

/**
 * Creates ingest's batcher; its failures are the store's coded errors (503, 429): the whole
 * batch's with one shard, a message's own (`refused`) with several.
 */
export function createIngestBatcher(redis: ReseqRedis, shards: Shards, settings: ReseqConfig['ingest']): IngestBatcher {
  const options = {
    idempotencyTtlSeconds: settings.idempotencyTtlSeconds,
    maxBacklog: settings.maxBacklog,
    destinationWindow: settings.destinationWindow,
  };
  const write = async (requests: IngestRequest[]): Promise<ShardedIngestOutcome[]> => {
    try {
      const outcomes = await writeShardedIngestBatch(redis, shards, requests, options);
      // Crash tests: durable in Redis, no 202 sent yet.
      faultPoint('ingest-after-write');
      for (const outcome of outcomes) {
        const coded = outcome.refused && toStoreError(outcome.refused);
        if (coded instanceof Error) outcome.refused = coded;
      }
      return outcomes;
    } catch (err) {
      throw toStoreError(err);
    }
  };
  if (shards.count === 1) return new MicroBatcher(write, settings.maxBatch);
  // Each batch is answered once the batch before it is: written in parallel, answered in order.
  let previous: Promise<unknown> = Promise.resolve();
  return new MicroBatcher(async (requests: IngestRequest[]) => {
    const before = previous;
    const written = write(requests);
    previous = Promise.allSettled([before, written]);
    await before;
    return written;
  }, settings.maxBatch);
}
