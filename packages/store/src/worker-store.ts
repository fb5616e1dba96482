/**
 * Step 2: transform workers read the input stream through the `workers` consumer group, take
 * over entries of crashed peers, and record each batch of outcomes with one `complete` script
 * call (see lua/complete.lua), which writes every result to its destination's result stream.
 */
import type { Redis } from 'ioredis';
import { decodeInputEntry, kindToWire, type InputEntry, type ResultKind } from './codec.js';
import { WORKER_GROUP, type KeySchema } from './keys.js';
import { runScript, type ReseqRedis } from './scripts.js';

type StreamEntries = [id: string, fields: string[] | null][];

/**
 * Creates the workers' consumer group (from the start of the stream) unless it exists. On a Redis
 * Cluster, XGROUP (whose key ioredis does not see) rides in a pipeline with a command on the
 * stream's key, so it goes to the stream's master.
 */
export async function ensureWorkerGroup(redis: Redis, keys: KeySchema): Promise<void> {
  const replies = await redis
    .pipeline()
    .exists(keys.input)
    .xgroup('CREATE', keys.input, WORKER_GROUP, '0', 'MKSTREAM')
    .exec();
  for (const [err] of replies ?? []) {
    if (err && !err.message.includes('BUSYGROUP')) throw err;
  }
}

/** What a read returned: decodable entries, and ids of entries that are not ours. */
export interface ReadResult {
  entries: InputEntry[];
  /** Entries without usable fields (foreign writes): acknowledge and drop them. */
  malformed: string[];
}

function splitEntries(raw: StreamEntries): ReadResult {
  const result: ReadResult = { entries: [], malformed: [] };
  for (const [entryId, fields] of raw) {
    const entry = decodeInputEntry(entryId, fields);
    if (entry) result.entries.push(entry);
    else result.malformed.push(entryId);
  }
  return result;
}

/**
 * Reads entries for this consumer: `>` for new ones (blocking up to `blockMs`), or an entry id
 * (`0` to start) to page through the ones already delivered to it, i.e. its own pending
 * entries after a restart. Use a connection reserved for blocking reads.
 *
 * A blocked read (`>`) whose stream is deleted meanwhile ends with `UNBLOCKED`, an empty read
 * here: on a Redis Cluster, MIGRATE moving the stream to another node (resharding) does that,
 * and the next read finds the stream there (ASK, then MOVED). Nothing was read.
 */
export async function readInput(
  blocking: Redis,
  keys: KeySchema,
  consumer: string,
  from: string,
  count: number,
  blockMs: number,
): Promise<ReadResult & { lastId: string | undefined }> {
  const reply = await readGroup(blocking, keys, consumer, from, count, blockMs).catch((err: unknown) => {
    if (from === '>' && err instanceof Error && err.message.startsWith('UNBLOCKED')) return null;
    throw err;
  });
  const raw = reply?.[0]?.[1] ?? [];
  // Pending entries deleted from the stream meanwhile come back with nil fields.
  const result = splitEntries(raw);
  return { ...result, lastId: raw[raw.length - 1]?.[0] };
}

/** One XREADGROUP of {@link readInput}. */
async function readGroup(
  blocking: Redis,
  keys: KeySchema,
  consumer: string,
  from: string,
  count: number,
  blockMs: number,
): Promise<[string, StreamEntries][] | null> {
  return (
    from === '>'
      ? await blocking.xreadgroup(
          'GROUP',
          WORKER_GROUP,
          consumer,
          'COUNT',
          count,
          'BLOCK',
          blockMs,
          'STREAMS',
          keys.input,
          '>',
        )
      : await blocking.xreadgroup('GROUP', WORKER_GROUP, consumer, 'COUNT', count, 'STREAMS', keys.input, from)
  ) as [string, StreamEntries][] | null;
}

/** What one XAUTOCLAIM step took over. */
export interface ClaimResult extends ReadResult {
  /** Cursor for the next step; `0-0` when the whole pending list was scanned. */
  cursor: string;
  /** Pending entries that no longer exist in the stream (trimmed or deleted by hand). */
  deleted: string[];
}

/**
 * Takes over up to `count` entries that have been pending (with any consumer) for at least
 * `minIdleMs`. Redis 7 also reports, and removes from the pending list, entries that were
 * deleted from the stream meanwhile; Redis 6.2 returned them with nil fields instead.
 */
export async function claimIdle(
  redis: Redis,
  keys: KeySchema,
  consumer: string,
  minIdleMs: number,
  cursor: string,
  count: number,
): Promise<ClaimResult> {
  const reply = (await redis.xautoclaim(keys.input, WORKER_GROUP, consumer, minIdleMs, cursor, 'COUNT', count)) as [
    string,
    StreamEntries,
    string[]?,
  ];
  const [next, raw, deleted = []] = reply;
  const live = raw.filter(([, fields]) => fields !== null);
  const nilled = raw.filter(([, fields]) => fields === null).map(([id]) => id);
  return { cursor: next, ...splitEntries(live), deleted: [...deleted, ...nilled] };
}

/** How many times each of this consumer's pending entries has been delivered (XPENDING). */
export async function deliveryCounts(
  redis: Redis,
  keys: KeySchema,
  consumer: string,
  entryIds: readonly string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (entryIds.length === 0) return counts;
  // One exact XPENDING per id, in one round trip: a single range from the lowest to the highest
  // id with a COUNT stops early when the consumer holds many other entries in between.
  const pipeline = redis.pipeline();
  for (const id of entryIds) pipeline.xpending(keys.input, WORKER_GROUP, id, id, 1, consumer);
  for (const [err, reply] of (await pipeline.exec()) ?? []) {
    if (err) throw err;
    for (const [id, , , times] of reply as [string, string, number, number][]) counts.set(id, times);
  }
  return counts;
}

/** Orders stream ids numerically. */
export function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

/**
 * Resets the idle time of entries this consumer is still working on, so peers do not take
 * over a long transform that is alive.
 */
export async function touchEntries(
  redis: Redis,
  keys: KeySchema,
  consumer: string,
  ids: readonly string[],
): Promise<void> {
  if (ids.length === 0) return;
  await redis.xclaim(keys.input, WORKER_GROUP, consumer, 0, ...ids, 'JUSTID');
}

/**
 * Hands entries back on shutdown: marks them idle for `idleMs`, so a peer's next XAUTOCLAIM
 * takes them over at once instead of after the idle timeout.
 */
export async function handBackEntries(
  redis: Redis,
  keys: KeySchema,
  consumer: string,
  ids: readonly string[],
  idleMs: number,
): Promise<void> {
  if (ids.length === 0) return;
  await redis.xclaim(keys.input, WORKER_GROUP, consumer, 0, ...ids, 'IDLE', idleMs, 'JUSTID');
}

/** Acknowledges and deletes entries that carry no message (malformed or deleted). */
export async function discardEntries(redis: Redis, keys: KeySchema, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await redis
    .multi()
    .xack(keys.input, WORKER_GROUP, ...ids)
    .xdel(keys.input, ...ids)
    .exec();
}

/** The outcome of one transform, as the worker records it. */
export interface Outcome {
  entry: InputEntry;
  kind: ResultKind;
  attempts: number;
  /** Transformed payload JSON ("value"), last error ("dead"), or "" ("none"). */
  body: string;
}

/**
 * Records a batch of outcomes in one script call.
 * @returns how many were written, and how many were duplicates (already completed by a peer).
 */
export async function completeBatch(
  redis: ReseqRedis,
  keys: KeySchema,
  outcomes: readonly Outcome[],
  now = Date.now(),
): Promise<{ written: number; duplicates: number }> {
  const scriptKeys = [keys.input, keys.deadLetters];
  const keyIndex = new Map<string, number>();
  // Position in KEYS (1-based, as Lua counts) of a key, added on first use.
  const keyAt = (key: string): number => {
    let index = keyIndex.get(key);
    if (index === undefined) {
      scriptKeys.push(key);
      index = scriptKeys.length;
      keyIndex.set(key, index);
    }
    return index;
  };
  const args: (string | number)[] = [WORKER_GROUP, now, outcomes.length];
  for (const { entry, kind, attempts, body } of outcomes) {
    const index = keyAt(keys.results(entry.destination));
    args.push(
      entry.entryId,
      index,
      kindToWire(kind),
      entry.id,
      entry.sequence,
      entry.acceptedAt,
      attempts,
      body,
      kind === 'dead' ? `${entry.destination}\n${entry.payload}` : '',
      kind === 'dead' ? keyAt(keys.deadLetterIndex(entry.destination)) : 0,
    );
  }
  const [written, duplicates] = (await runScript(redis, 'complete', scriptKeys, args)) as [number, number];
  return { written, duplicates };
}

/**
 * Trims the input stream below the oldest entry any consumer group still needs (its oldest
 * pending entry, else the first one it has not read), never by length: MAXLEN would silently drop
 * pending or unread entries. `complete` trims the same way after every call, so this only catches
 * what settled outside it (malformed entries discarded, an operator's XACK); it keeps memory flat
 * in long runs whatever operators add to the stream. Safe against races:
 * new entries only arrive above the computed bound, and a group's bound only moves up.
 * @returns how many entries were trimmed.
 */
export async function trimInput(redis: Redis, keys: KeySchema): Promise<number> {
  // XINFO rides with XLEN, so a Cluster client sends it to the stream's master (as XGROUP above).
  const [, [infoError, info] = [new Error('no reply to XINFO GROUPS'), null]] =
    (await redis.pipeline().xlen(keys.input).xinfo('GROUPS', keys.input).exec()) ?? [];
  if (infoError) throw infoError;
  const groups = info as (string | number)[][];
  let bound: string | undefined;
  for (const flat of groups) {
    const info = new Map<string, string | number>();
    for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]!);
    const name = String(info.get('name'));
    const summary = (await redis.xpending(keys.input, name)) as [number, string | null, string | null, unknown];
    // The oldest pending entry, else the one right after the last delivered to the group.
    const [ms = '0', seq = '0'] = String(info.get('last-delivered-id') ?? '0-0').split('-');
    const needed = summary[1] ?? `${ms}-${BigInt(seq) + 1n}`;
    if (bound === undefined || compareIds(needed, bound) < 0) bound = needed;
  }
  if (bound === undefined) return 0;
  return await redis.xtrim(keys.input, 'MINID', bound);
}

/**
 * Removes from the worker group the consumers that hold nothing and have not read for `idleMs`:
 * the names of workers that stopped or crashed (each process reads as `<host>-<pid>`, so every
 * restart adds one), which would otherwise pile up in `XINFO CONSUMERS` for good. One script
 * call (lua/forget-consumers.lua), so no consumer can take an entry between the check and its
 * removal: XGROUP DELCONSUMER drops whatever the consumer holds from the group's pending list.
 * A live worker that read nothing for that long is made again by its next XREADGROUP.
 * @returns the names removed.
 */
export async function forgetIdleConsumers(
  redis: ReseqRedis,
  keys: KeySchema,
  self: string,
  idleMs: number,
): Promise<string[]> {
  return (await runScript(redis, 'forget-consumers', [keys.input], [WORKER_GROUP, self, idleMs])) as string[];
}
