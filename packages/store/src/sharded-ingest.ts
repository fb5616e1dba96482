/**
 * Step 1 with several shards (`RESEQ_SHARDS` > 1): a batch of messages is split by the shards of
 * their destinations, and each shard's part is one `ingest` script call (confirmed by WAIT where
 * configured) on that shard's keys, all in parallel. A message to destinations on different shards
 * is written shard by shard: each part is atomic, the message as a whole is durable once every
 * part is. With one shard this is exactly {@link writeIngestBatch}.
 */
import { writeIngestBatch, type IngestBatchOptions, type IngestOutcome, type IngestRequest } from './ingest-store.js';
import type { ReseqRedis } from './scripts.js';
import type { Shards } from './shards.js';

/** What a sharded batch answered for one message. */
export interface ShardedIngestOutcome extends IngestOutcome {
  /**
   * The failure of a shard that holds one of the message's destinations (backlog full, replicas
   * unavailable, Redis unreachable): the message is not durable as a whole. Parts on other shards
   * may be written; a retry with the same client id finds them (their stored sequences) and
   * writes only what is missing.
   */
  refused?: Error;
}

/**
 * Makes a batch of messages durable on their destinations' shards.
 * @returns one outcome per request, in request order: sequences of every destination, in the
 *   request's order, once every part is written; else `windowFull` or `refused`.
 * @throws with one shard, what {@link writeIngestBatch} throws (the whole batch failed).
 */
export async function writeShardedIngestBatch(
  redis: ReseqRedis,
  shards: Shards,
  requests: readonly IngestRequest[],
  options: IngestBatchOptions,
): Promise<ShardedIngestOutcome[]> {
  if (shards.count === 1) return writeIngestBatch(redis, shards.home, requests, options);
  const now = options.now ?? Date.now();
  // Each message's part on each of its shards, tagged with the message it belongs to.
  const parts = requests.flatMap((request, owner) =>
    [...shards.group(request.destinations, (d) => d)].map(([keys, destinations]) => ({
      keys,
      owner,
      request: { ...request, destinations },
    })),
  );
  const byShard = shards.group(parts, (part) => part.request.destinations[0]!);
  const outcomes: ShardedIngestOutcome[] = requests.map(() => ({ sequences: {}, duplicate: true }));
  await Promise.all(
    [...byShard].map(async ([keys, shardParts]) => {
      try {
        const written = await writeIngestBatch(
          redis,
          keys,
          shardParts.map((part) => part.request),
          { ...options, now },
        );
        shardParts.forEach((part, i) => {
          const outcome = outcomes[part.owner]!;
          const got = written[i]!;
          Object.assign(outcome.sequences, got.sequences);
          outcome.duplicate &&= got.duplicate;
          if (got.windowFull !== undefined) outcome.windowFull ??= got.windowFull;
        });
      } catch (err) {
        const refused = err instanceof Error ? err : new Error(String(err));
        for (const part of shardParts) outcomes[part.owner]!.refused ??= refused;
      }
    }),
  );
  // The sequences in the order the client named the destinations, as one shard answers them.
  requests.forEach((request, i) => {
    const outcome = outcomes[i]!;
    const sequences: Record<string, number> = {};
    for (const d of request.destinations) if (Object.hasOwn(outcome.sequences, d)) sequences[d] = outcome.sequences[d]!;
    outcome.sequences = sequences;
    if (outcome.refused !== undefined || outcome.windowFull !== undefined) outcome.duplicate = false;
  });
  return outcomes;
}
