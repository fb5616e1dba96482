/**
 * Changing a pipeline's shard count (`reseq shards migrate --to <N>`), offline: with every app
 * stopped and the pipeline drained (nothing in flight, no dead letter), each destination's
 * counters (last sequence assigned and delivered, fencing token, pause), replay history and
 * skipped set move to its shard in the new layout, and so do the client ids ingest still
 * remembers, so sequences go on where they stopped and a client's retry of an old message is
 * still answered with its sequences. Then the new count is recorded and the old keys removed.
 * Each step copies before it deletes, so a run cut short is run again as it was.
 */
import { ReseqError } from '@reseq/runtime';
import type { Redis } from 'ioredis';
import { masterConnections } from './cluster.js';
import type { KeySchema } from './keys.js';
import type { Shards } from './shards.js';

const PAGE = 500;

/** `SHARD_MIGRATION_REFUSED`: the pipeline is not drained, or a sender still runs. */
export class ShardMigrationRefusedError extends ReseqError {
  override readonly name = 'ShardMigrationRefusedError';
  constructor(readonly reasons: readonly string[]) {
    super('SHARD_MIGRATION_REFUSED', `cannot change the shard count now: ${reasons.join('; ')}`, {
      statusCode: 409,
      context: { reasons },
    });
  }
}

/** What a migration moved. */
export interface ShardMigration {
  from: number;
  to: number;
  /** Per destination: its shard before and after, and its last sequence (assigned = delivered). */
  destinations: Record<string, { from: number; to: number; sequence: number }>;
  /** Client-id records moved (ingest's de-duplication of retries). */
  clientIds: number;
  /** Replay history entries moved. */
  historyEntries: number;
}

/** Options of {@link migrateShards}. */
export interface MigrateShardsOptions {
  /** The destinations to move: the config file's and every other the old layout knows. */
  destinations: readonly string[];
  /** A sender heartbeat younger than this (ms, Redis clock) counts as a live sender. */
  liveMs: number;
}

const toInt = (value: string | null | undefined): number => (value ? Number(value) : 0);

/** Why the old layout cannot be moved now; empty when it is drained and no sender runs. */
async function refusals(
  redis: Redis,
  from: Shards,
  destinations: readonly string[],
  liveMs: number,
): Promise<string[]> {
  const reasons: string[] = [];
  const [seconds, micros] = (await redis.time()) as [string | number, string | number];
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const live = await redis.zcount(from.home.senders, now - liveMs, '+inf');
  if (live > 0)
    reasons.push(`${live} resequencer-sender(s) sent a heartbeat within ${liveMs} ms: stop every app first`);
  for (const keys of from.all) {
    const [inLength, dlqLength] = await Promise.all([redis.xlen(keys.input), redis.xlen(keys.deadLetters)]);
    if (inLength > 0) reasons.push(`${keys.input} holds ${inLength} message(s) not yet transformed`);
    if (dlqLength > 0) reasons.push(`${keys.deadLetters} holds ${dlqLength} dead letter(s): retry or skip them`);
  }
  for (const d of destinations) {
    const keys = from.forDestination(d);
    const [assigned, delivered, results, buffered, replay, lease] = await Promise.all([
      redis.hget(keys.sequences, d),
      redis.hget(keys.delivered, d),
      redis.xlen(keys.results(d)),
      redis.hlen(keys.buffer(d)),
      redis.exists(keys.replay(d)),
      redis.exists(keys.lease(d)),
    ]);
    if (toInt(assigned) !== toInt(delivered))
      reasons.push(`${d}: ${toInt(assigned) - toInt(delivered)} message(s) not delivered yet`);
    if (results + buffered > 0) reasons.push(`${d}: ${results + buffered} result(s) waiting for delivery`);
    if (replay > 0) reasons.push(`${d}: a replay is pending`);
    if (lease > 0) reasons.push(`${d}: a sender holds its lease: stop every app first`);
  }
  return reasons;
}

/** Copies a stream's entries (ids kept) onto another key, after what that key already holds. */
async function copyStream(redis: Redis, from: string, to: string): Promise<number> {
  const [last] = await redis.xrevrange(to, '+', '-', 'COUNT', 1);
  let copied = 0;
  for (let start = last ? `(${last[0]}` : '-'; ;) {
    const page = await redis.xrange(from, start, '+', 'COUNT', PAGE);
    if (page.length > 0) {
      const pipeline = redis.pipeline();
      for (const [id, fields] of page) pipeline.xadd(to, id, ...fields);
      for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
      copied += page.length;
    }
    if (page.length < PAGE) return copied;
    start = `(${page[page.length - 1]![0]}`;
  }
}

/** Moves the client-id records of the old layout, split by the new shards of their destinations. */
async function moveClientIds(redis: Redis, from: Shards, to: Shards): Promise<number> {
  let moved = 0;
  for (const keys of from.all) {
    const prefix = keys.clientId('');
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    // SCAN covers one node: on a Cluster, each master (a key lives on its slot's master).
    for (const node of masterConnections(redis)) {
      let cursor = '0';
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', PAGE);
        cursor = next;
        for (const oldKey of found) {
          if (await moveClientId(redis, to, oldKey, oldKey.slice(prefix.length))) moved++;
        }
      } while (cursor !== '0');
    }
  }
  return moved;
}

async function moveClientId(redis: Redis, to: Shards, oldKey: string, id: string): Promise<boolean> {
  const [record, ttl] = await Promise.all([redis.get(oldKey), redis.pttl(oldKey)]);
  if (record === null || ttl === -2) return false;
  const parts = record.split('\n');
  const byKey = new Map<string, string[]>();
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const key = to.forDestination(parts[i]!).clientId(id);
    byKey.set(key, [...(byKey.get(key) ?? []), parts[i]!, parts[i + 1]!]);
  }
  const store = (key: string, value: string): Promise<unknown> =>
    ttl > 0 ? redis.set(key, value, 'PX', ttl) : redis.set(key, value);
  for (const [newKey, pairs] of byKey) {
    if (newKey === oldKey) continue;
    // A message whose parts were on two old shards that share a new one: both parts kept.
    const existing = await redis.get(newKey);
    await store(newKey, existing ? `${existing}\n${pairs.join('\n')}` : pairs.join('\n'));
  }
  // The old key is a new shard's too (the same tag in both layouts): it keeps that shard's part.
  const staying = byKey.get(oldKey);
  if (staying) await store(oldKey, staying.join('\n'));
  else await redis.del(oldKey);
  return true;
}

/** The per-shard keys that hold nothing once the pipeline is drained and its apps stopped. */
function shardKeys(keys: KeySchema): string[] {
  return [
    keys.input,
    keys.sequences,
    keys.delivered,
    keys.fences,
    keys.blocked,
    keys.paused,
    keys.deadLetters,
    keys.hedges,
    keys.waitMark,
  ];
}

/**
 * Moves a drained pipeline from the layout of `from` to that of `to` (see the module comment).
 * @throws {ShardMigrationRefusedError} when something is in flight, a dead letter waits, a replay
 *   is pending or a sender runs; nothing is changed then.
 */
export async function migrateShards(
  redis: Redis,
  from: Shards,
  to: Shards,
  options: MigrateShardsOptions,
): Promise<ShardMigration> {
  const { destinations } = options;
  const report: ShardMigration = { from: from.count, to: to.count, destinations: {}, clientIds: 0, historyEntries: 0 };
  if (from.count === to.count) return report;
  const reasons = await refusals(redis, from, destinations, options.liveMs);
  if (reasons.length > 0) throw new ShardMigrationRefusedError(reasons);

  const newNames = new Set(to.all.flatMap(shardKeys));
  const obsolete: string[] = [];
  for (const d of destinations) {
    const was = from.forDestination(d);
    const now = to.forDestination(d);
    const sequence = toInt(await redis.hget(was.sequences, d));
    report.destinations[d] = { from: was.shard, to: now.shard, sequence };
    for (const hash of ['sequences', 'delivered', 'fences', 'paused'] as const) {
      if (was[hash] === now[hash]) continue;
      const value = await redis.hget(was[hash], d);
      if (value !== null) await redis.hset(now[hash], d, value);
    }
    if (was.tag === now.tag) continue;
    report.historyEntries += await copyStream(redis, was.history(d), now.history(d));
    const skipped = await redis.smembers(was.skipped(d));
    if (skipped.length > 0) await redis.sadd(now.skipped(d), ...skipped);
    obsolete.push(
      was.history(d),
      was.skipped(d),
      was.results(d),
      was.buffer(d),
      was.deadLetterIndex(d),
      was.replay(d),
      was.lease(d),
    );
  }
  report.clientIds = await moveClientIds(redis, from, to);

  // From here on the new layout counts: apps with the new RESEQ_SHARDS start, the old one is refused.
  if (to.count === 1) await redis.hdel(to.home.meta, 'shards');
  else await redis.hset(to.home.meta, 'shards', String(to.count));

  for (const d of destinations) {
    const was = from.forDestination(d);
    const now = to.forDestination(d);
    for (const hash of ['sequences', 'delivered', 'fences', 'paused', 'blocked'] as const) {
      if (was[hash] !== now[hash]) await redis.hdel(was[hash], d);
    }
  }
  for (const key of [...obsolete, ...from.all.flatMap(shardKeys)]) if (!newNames.has(key)) await redis.del(key);
  return report;
}
