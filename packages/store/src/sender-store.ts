/**
 * Step 3: the resequencer-sender. It leases destinations (fenced), moves their results from
 * the result streams into reorder buffers (lua/buffer.lua), and records delivery progress
 * only under its lease (lua/advance.lua).
 */
import type { Redis } from 'ioredis';
import { decodeBuffered, decodeResultEntry, encodeBuffered, type Result, type ResultEntry } from './codec.js';
import type { KeySchema } from './keys.js';
import { runScript, type ReseqRedis } from './scripts.js';

/** Announces this sender (or withdraws it) and returns how many senders are alive. */
export async function senderHeartbeat(
  redis: ReseqRedis,
  keys: KeySchema,
  senderId: string,
  liveMs: number,
  alive: boolean,
): Promise<number> {
  return (await runScript(redis, 'sender-heartbeat', [keys.senders], [senderId, liveMs, alive ? '1' : '0'])) as number;
}

/**
 * Takes free leases (at most `maxNew` of them, in the given order) or extends the caller's own;
 * returns destination -> lease value for those held now.
 */
export async function acquireLeases(
  redis: ReseqRedis,
  keys: KeySchema,
  senderId: string,
  destinations: readonly string[],
  ttlMs: number,
  maxNew: number,
): Promise<Map<string, string>> {
  const held = new Map<string, string>();
  if (destinations.length === 0) return held;
  const reply = (await runScript(
    redis,
    'lease-acquire',
    [keys.fences, ...destinations.map((d) => keys.lease(d))],
    [senderId, ttlMs, maxNew, ...destinations],
  )) as string[];
  destinations.forEach((d, i) => {
    if (reply[i]) held.set(d, reply[i]);
  });
  return held;
}

/** Extends held leases; returns the destinations whose lease was lost. */
export async function renewLeases(
  redis: ReseqRedis,
  keys: KeySchema,
  leases: ReadonlyMap<string, string>,
  ttlMs: number,
): Promise<string[]> {
  if (leases.size === 0) return [];
  const destinations = [...leases.keys()];
  const reply = (await runScript(
    redis,
    'lease-renew',
    destinations.map((d) => keys.lease(d)),
    [ttlMs, ...leases.values()],
  )) as number[];
  return destinations.filter((_, i) => reply[i] !== 1);
}

/** Gives leases back at once. */
export async function releaseLeases(
  redis: ReseqRedis,
  keys: KeySchema,
  leases: ReadonlyMap<string, string>,
): Promise<void> {
  if (leases.size === 0) return;
  await runScript(
    redis,
    'lease-release',
    [...leases.keys()].map((d) => keys.lease(d)),
    [...leases.values()],
  );
}

/** A destination's durable delivery state, as a newly active sender loads it. */
export interface LaneState {
  delivered: number;
  /** Sequence of the dead letter that blocks the destination, if any. */
  blockedAt: number | undefined;
  buffered: Result[];
}

/** Reads a destination's delivered position, block marker and reorder buffer. */
export async function loadLaneState(redis: Redis, keys: KeySchema, destination: string): Promise<LaneState> {
  const reply = await redis
    .multi()
    .hget(keys.delivered, destination)
    .hget(keys.blocked, destination)
    .hgetall(keys.buffer(destination))
    .exec();
  if (!reply) throw new Error('transaction aborted');
  for (const [err] of reply) if (err) throw err;
  const delivered = Number(reply[0]![1] ?? 0);
  const blocked = reply[1]![1] as string | null;
  const buffered: Result[] = [];
  for (const [field, value] of Object.entries(reply[2]![1] as Record<string, string>)) {
    const result = decodeBuffered(Number(field), value);
    if (result) buffered.push(result);
  }
  return { delivered, blockedAt: blocked === null ? undefined : Number(blocked), buffered };
}

/**
 * Reads new results of several destinations (blocking up to `blockMs`), from the given stream
 * positions. Use a connection reserved for blocking reads.
 */
export async function readResults(
  blocking: Redis,
  keys: KeySchema,
  cursors: ReadonlyMap<string, string>,
  count: number,
  blockMs: number,
): Promise<Map<string, { entries: ResultEntry[]; lastId: string; malformed: string[] }>> {
  const destinations = [...cursors.keys()];
  const out = new Map<string, { entries: ResultEntry[]; lastId: string; malformed: string[] }>();
  if (destinations.length === 0) return out;
  const reply = await blocking.xread(
    'COUNT',
    count,
    'BLOCK',
    blockMs,
    'STREAMS',
    ...destinations.map((d) => keys.results(d)),
    ...cursors.values(),
  );
  const byKey = new Map(destinations.map((d) => [keys.results(d), d]));
  for (const [key, raw] of reply ?? []) {
    const destination = byKey.get(key);
    if (!destination || raw.length === 0) continue;
    const entries: ResultEntry[] = [];
    const malformed: string[] = [];
    for (const [entryId, fields] of raw) {
      const entry = decodeResultEntry(entryId, fields);
      if (entry) entries.push(entry);
      else malformed.push(entryId);
    }
    out.set(destination, { entries, lastId: raw[raw.length - 1]![0], malformed });
  }
  return out;
}

/**
 * Moves read results into the destinations' reorder buffers and deletes them from the result
 * streams, in one script call, fenced by the leases. Returns destination -> number of
 * duplicates dropped, or -1 where the lease was lost (nothing moved).
 */
export async function bufferResults(
  redis: ReseqRedis,
  keys: KeySchema,
  batches: ReadonlyMap<string, { leaseValue: string; entries: readonly ResultEntry[]; malformed: readonly string[] }>,
): Promise<Map<string, number>> {
  const scriptKeys = [keys.delivered];
  const args: (string | number)[] = [batches.size];
  for (const [destination, { leaseValue, entries, malformed }] of batches) {
    scriptKeys.push(keys.lease(destination), keys.buffer(destination), keys.results(destination));
    args.push(destination, leaseValue, entries.length + malformed.length);
    for (const entry of entries) args.push(entry.entryId, entry.sequence, encodeBuffered(entry));
    // Malformed entries get sequence 0: never buffered, always deleted.
    for (const entryId of malformed) args.push(entryId, 0, '');
  }
  const reply = (await runScript(redis, 'buffer', scriptKeys, args)) as number[];
  const duplicates = new Map<string, number>();
  [...batches.keys()].forEach((d, i) => duplicates.set(d, reply[i] ?? 0));
  return duplicates;
}

/** One destination's progress to record. */
export interface AdvanceStep {
  destination: string;
  leaseValue: string;
  from: number;
  to: number;
}

/** What recording a step answered. */
export type AdvanceOutcome = 'recorded' | 'already' | 'fenced' | 'out-of-turn';

const ADVANCE_OUTCOMES: Record<number, AdvanceOutcome> = {
  1: 'recorded',
  0: 'already',
  [-1]: 'fenced',
  [-2]: 'out-of-turn',
};

/** Records the progress of several destinations in one script call, fenced by their leases. */
export async function advanceDelivered(
  redis: ReseqRedis,
  keys: KeySchema,
  steps: readonly AdvanceStep[],
): Promise<AdvanceOutcome[]> {
  const scriptKeys = [keys.delivered, keys.blocked];
  const args: (string | number)[] = [steps.length];
  for (const step of steps) {
    scriptKeys.push(keys.lease(step.destination), keys.buffer(step.destination));
    args.push(step.destination, step.leaseValue, step.from, step.to);
  }
  const reply = (await runScript(redis, 'advance', scriptKeys, args)) as number[];
  return reply.map((code) => ADVANCE_OUTCOMES[code] ?? 'out-of-turn');
}

/** Marks a destination as blocked by the dead letter at `sequence` (for status and operators). */
export async function markBlocked(redis: Redis, keys: KeySchema, destination: string, sequence: number): Promise<void> {
  await redis.hset(keys.blocked, destination, sequence);
}

/** Reads a destination's block marker (undefined when it is not blocked). */
export async function readBlocked(redis: Redis, keys: KeySchema, destination: string): Promise<number | undefined> {
  const value = await redis.hget(keys.blocked, destination);
  return value === null ? undefined : Number(value);
}

/**
 * Appends a result the destination refused for good (a 4xx) to the dead-letter stream, with
 * the same fields a transform's dead letter has.
 */
export async function deadLetterDelivery(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  result: Result,
  error: string,
): Promise<void> {
  await redis.xadd(
    keys.deadLetters,
    '*',
    'd',
    destination,
    's',
    result.sequence,
    'm',
    result.id,
    'a',
    result.attempts,
    'e',
    error,
    't',
    result.acceptedAt,
    'at',
    Date.now(),
    'p',
    result.body,
    'stage',
    'delivery',
  );
}
