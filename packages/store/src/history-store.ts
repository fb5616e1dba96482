/**
 * A destination's retained history and its replays: the `advance` script keeps the values it
 * settles in `{prefix}:hist:<d>` (sender-store's advanceDelivered); `reseq replay` records a
 * request (lua/replay-request.lua) that the destination's active sender takes up, delivering
 * the history again, in order, under its lease (lua/replay-step.lua).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Result } from './codec.js';
import { ReplayNotDeliveredError, ReplayNotRetainedError, ReplayPausedError, ReplayPendingError } from './errors.js';
import type { KeySchema } from './keys.js';
import { runScriptConfirmed } from './replication.js';
import { runScript, type ReseqRedis } from './scripts.js';

/** A pending replay request, as Redis holds it. */
export interface ReplayRequest {
  /** Chosen by `reseq replay`, so the sender acts only on the request it took up. */
  id: string;
  /** First sequence to deliver again. */
  from: number;
  /** The delivered position when the request was made. */
  requested: number;
  /** When it was requested, ms since the epoch. */
  requestedAt: number;
  /** Last sequence the replay covers: fixed by the sender when it starts; null before. */
  to: number | null;
  /** Next sequence the sender delivers again; null before it starts. */
  next: number | null;
}

/** What `reseq replay` scheduled. */
export interface ReplayScheduled {
  destination: string;
  id: string;
  from: number;
  /** The delivered position now: the replay covers at least `from`..`to`. */
  to: number;
  /** The oldest and newest sequences the history holds now. */
  retained: { oldest: number; newest: number };
  /** ms since the epoch. */
  requestedAt: number;
}

const num = (value: unknown): number => Number(value ?? 0);

/**
 * Records a replay of `destination` from `from` up to its delivered position, for its active
 * sender to take up.
 * @throws {ReplayPausedError} while the destination is paused.
 * @throws {ReplayPendingError} while another replay of it is pending.
 * @throws {ReplayNotDeliveredError} when `from` is above the delivered position.
 * @throws {ReplayNotRetainedError} when the history no longer holds `from` (or holds nothing).
 * @throws {ReplicasUnavailableError} when recorded but not confirmed by the replicas in time.
 */
export async function requestReplay(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  from: number,
  now = Date.now(),
): Promise<ReplayScheduled> {
  const id = `${now}-${randomBytes(4).toString('hex')}`;
  const { reply, unconfirmed } = await runScriptConfirmed(
    redis,
    keys.waitMark,
    'replay-request',
    [keys.delivered, keys.paused, keys.replay(destination), keys.history(destination)],
    [destination, from, id, now],
  );
  const [code, a, b, c] = reply as [string, number, number, number];
  switch (code) {
    case 'OK':
      if (unconfirmed) throw unconfirmed;
      return { destination, id, from, to: num(a), retained: { oldest: num(b), newest: num(c) }, requestedAt: now };
    case 'PAUSED':
      throw new ReplayPausedError(destination, num(a));
    case 'PENDING':
      throw new ReplayPendingError(destination, num(a), num(b), num(c));
    case 'NOT_DELIVERED':
      throw new ReplayNotDeliveredError(destination, from, num(a));
    case 'NOT_RETAINED':
      throw new ReplayNotRetainedError(destination, from, num(a), num(b));
    default:
      throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  }
}

/** Decodes a replay request hash (HGETALL); undefined when there is none. */
export function decodeReplayRequest(fields: Record<string, string>): ReplayRequest | undefined {
  if (!fields.id) return undefined;
  return {
    id: fields.id,
    from: num(fields.from),
    requested: num(fields.requested),
    requestedAt: num(fields.at),
    to: fields.to === undefined ? null : num(fields.to),
    next: fields.next === undefined ? null : num(fields.next),
  };
}

/** What a destination's lane looks at now and then: the pause marker and a replay request. */
export interface LaneControl {
  paused: boolean;
  replay: ReplayRequest | undefined;
}

/**
 * Reads a destination's pause marker and pending replay request, in one round trip. A
 * transaction, not a pipeline: while a Redis Cluster moves the slot, the two keys may be on
 * different nodes, and ioredis would send a pipeline that met ASK for one of them again to the
 * target, reading there the other one too (missing: "not paused"); the server refuses such a
 * transaction (TRYAGAIN) instead.
 */
export async function readLaneControl(redis: Redis, keys: KeySchema, destination: string): Promise<LaneControl> {
  const reply = await redis.multi().hexists(keys.paused, destination).hgetall(keys.replay(destination)).exec();
  if (!reply) throw new Error('transaction aborted');
  for (const [err] of reply) if (err) throw err;
  return {
    paused: reply[0]![1] === 1,
    replay: decodeReplayRequest((reply[1]![1] ?? {}) as Record<string, string>),
  };
}

/** Where a replay stands, as the sender that runs it sees it. */
export type ReplayStep = { outcome: 'ok'; from: number; to: number; next: number } | { outcome: 'fenced' | 'gone' };

/**
 * Moves a replay along under the destination's lease: `start` fixes its end at `value` (the
 * sender's delivered position) unless an earlier holder did, `next` records the next sequence
 * to deliver again, `done` deletes the request. `fenced`: the lease is not the caller's;
 * `gone`: the request is not there (deleted by hand).
 */
export async function replayStep(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  leaseValue: string,
  id: string,
  mode: 'start' | 'next' | 'done',
  value = 0,
): Promise<ReplayStep> {
  const reply = (await runScript(
    redis,
    'replay-step',
    [keys.lease(destination), keys.replay(destination)],
    [leaseValue, id, mode, value],
  )) as [string, number?, number?, number?];
  if (reply[0] === 'FENCED') return { outcome: 'fenced' };
  if (reply[0] === 'GONE') return { outcome: 'gone' };
  return { outcome: 'ok', from: num(reply[1]), to: num(reply[2]), next: num(reply[3]) };
}

/**
 * Reads up to `count` retained values of `destination` with sequences `from`..`to`, oldest
 * first, as the results they were delivered as (message id, accept time, transformed payload).
 */
export async function readHistory(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  from: number,
  to: number,
  count: number,
): Promise<Result[]> {
  if (from > to) return [];
  const entries = await redis.xrange(keys.history(destination), `${from}-0`, `${to}-0`, 'COUNT', count);
  const out: Result[] = [];
  for (const [entryId, fields] of entries) {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
    const sequence = Number(entryId.slice(0, entryId.indexOf('-')));
    const body = f.get('p');
    if (!Number.isSafeInteger(sequence) || sequence < 1 || body === undefined) continue;
    out.push({
      kind: 'value',
      id: f.get('m') ?? '',
      sequence,
      acceptedAt: Number(f.get('t') ?? 0),
      attempts: Number(f.get('a') ?? 1),
      body,
    });
  }
  return out;
}
