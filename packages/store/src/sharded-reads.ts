/**
 * The operator's reads over every shard (`RESEQ_SHARDS`): each shard is read with the same
 * single-shard read (one transaction or script per shard, on its own slot), and the answers are
 * merged, as `reseq status`, `reseq dlq list` and the status page show them. With one shard each
 * is exactly the single-shard read.
 */
import { inspectPipeline, type Inspection } from './inspect-store.js';
import {
  knownDestinations,
  listDeadLetters,
  readStatus,
  type DeadLetter,
  type DestinationStatus,
} from './operator-store.js';
import type { ReseqRedis } from './scripts.js';
import type { Shards } from './shards.js';

/**
 * The destinations an operator can name: those in the config file, in its order, then any other
 * that any shard knows, by name.
 */
export async function knownDestinationsOfShards(
  redis: ReseqRedis,
  shards: Shards,
  configured: readonly string[],
): Promise<string[]> {
  if (shards.count === 1) return knownDestinations(redis, shards.home, configured);
  const known = new Set(configured);
  const perShard = await Promise.all(shards.all.map((keys) => knownDestinations(redis, keys, [])));
  const extra = [...new Set(perShard.flat())].filter((d) => !known.has(d)).sort();
  return [...configured, ...extra];
}

/**
 * The state of the given destinations, each read on its shard (one consistent snapshot per
 * shard), in the order given.
 */
export async function readStatusOfShards(
  redis: ReseqRedis,
  shards: Shards,
  destinations: readonly string[],
  now = Date.now(),
): Promise<Map<string, DestinationStatus>> {
  if (shards.count === 1) return readStatus(redis, shards.home, destinations, now);
  const states = await shards.perShard(
    destinations,
    (d) => d,
    async (keys, names) => {
      const read = await readStatus(redis, keys, names, now);
      return names.map((d) => read.get(d)!);
    },
  );
  return new Map(destinations.map((d, i) => [d, states[i]!]));
}

/**
 * Every dead letter (of one destination, when given: read on its shard only), ordered by
 * destination and sequence.
 */
export async function listDeadLettersOfShards(
  redis: ReseqRedis,
  shards: Shards,
  destination?: string,
): Promise<DeadLetter[]> {
  if (destination !== undefined) return listDeadLetters(redis, shards.forDestination(destination), destination);
  if (shards.count === 1) return listDeadLetters(redis, shards.home);
  const letters = (await Promise.all(shards.all.map((keys) => listDeadLetters(redis, keys)))).flat();
  // Each shard's list is ordered; a destination lives on one shard, so ordering by name merges them.
  return letters.sort((a, b) =>
    a.destination === b.destination ? a.sequence - b.sequence : a.destination < b.destination ? -1 : 1,
  );
}

/** The raw state of every shard, each with the destinations on it (shard 0 first). */
export async function inspectShards(
  redis: ReseqRedis,
  shards: Shards,
  destinations: readonly string[],
): Promise<Inspection[]> {
  const byShard = shards.group(destinations, (d) => d);
  return Promise.all(shards.all.map((keys) => inspectPipeline(redis, keys, byShard.get(keys) ?? [])));
}
