/**
 * The guard on `RESEQ_SHARDS`: a pipeline's keys are laid out for one shard count, and a process
 * that assumed another would look for every destination's state under the wrong tags. The count
 * of a pipeline with several shards is recorded in `{<prefix>}:meta` (field `shards`); no record
 * means one shard (today's single-Redis layout writes none). Every app checks it at start.
 */
import { ConfigError } from '@reseq/config';
import type { Redis } from 'ioredis';
import { Shards } from './shards.js';

/** The field of `{<prefix>}:meta` that records the shard count. */
const SHARDS_FIELD = 'shards';

/**
 * Whether any shard of `layout` holds pipeline state: sequences, positions, dead letters or input
 * entries. A transaction, as readLaneControl's: while a Cluster moves a slot, a pipeline of reads
 * on several keys could be answered by the node that does not have some of them.
 */
async function holdsState(redis: Redis, layout: Shards): Promise<boolean> {
  for (const keys of layout.all) {
    const replies = await redis
      .multi()
      .exists(keys.sequences, keys.delivered, keys.deadLetters)
      .xlen(keys.input)
      .exec();
    for (const [err, value] of replies ?? []) {
      if (err) throw err;
      if (Number(value) > 0) return true;
    }
  }
  return false;
}

/** The shard count recorded for the pipeline of `shards`; 1 where none is recorded. */
export async function recordedShardCount(redis: Redis, shards: Shards): Promise<number> {
  const value = await redis.hget(shards.home.meta, SHARDS_FIELD);
  return value === null ? 1 : Number(value);
}

/**
 * Checks that the pipeline's keys are laid out for `shards.count` shards. A pipeline without
 * state takes any count: with `record`, a count above 1 is recorded (where none is, or the one
 * recorded has no state left); a CLI only checks.
 * @throws {ConfigError} (`CONFIG_INVALID`) when another count is recorded, or none is while the
 *   single-shard layout holds state, and the recorded layout still holds state.
 */
export async function checkShardLayout(redis: Redis, shards: Shards, options: { record: boolean }): Promise<void> {
  const metaKey = shards.home.meta;
  const recorded = await redis.hget(metaKey, SHARDS_FIELD);
  const recordedCount = recorded === null ? 1 : Number(recorded);
  if (recordedCount === shards.count) return;
  const valid = Number.isInteger(recordedCount) && recordedCount >= 1 && recordedCount <= 1024;
  if (!valid || (await holdsState(redis, new Shards(shards.prefix, recordedCount)))) {
    throw layoutError(shards, metaKey, recorded ?? '1');
  }
  if (!options.record) return;
  if (shards.count === 1) {
    await redis.hdel(metaKey, SHARDS_FIELD);
    return;
  }
  if (recorded === null) await redis.hsetnx(metaKey, SHARDS_FIELD, String(shards.count));
  else await redis.hset(metaKey, SHARDS_FIELD, String(shards.count));
  // Processes started together with different counts: the first to record wins, the others stop.
  const now = await redis.hget(metaKey, SHARDS_FIELD);
  if (now !== String(shards.count)) throw layoutError(shards, metaKey, now ?? '1');
}

function layoutError(shards: Shards, metaKey: string, recorded: string): ConfigError {
  return new ConfigError([
    `env RESEQ_SHARDS: ${shards.count}, but the pipeline "${shards.prefix}" is laid out over ${recorded} ` +
      `shard(s) (${metaKey}, field ${SHARDS_FIELD}; absent means 1) and holds state there: set ` +
      `RESEQ_SHARDS=${recorded}, or drain the pipeline and change the count as docs/operations.md ` +
      `("Changing the shard count") says`,
  ]);
}
