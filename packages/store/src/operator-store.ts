/**
 * The operator's side of the store, used by the CLI (`pnpm reseq`): a destination's state as
 * `status` shows it, the dead letters as `dlq list` shows them, and the two releases of a dead
 * letter, `dlq retry` (lua/dlq-retry.lua) and `dlq skip` (lua/dlq-skip.lua), each one script.
 */
import type { Redis } from 'ioredis';
import { DeadLetterLostError, DeadLetterNotFoundError, DeadLetterPassedError } from './errors.js';
import { decodeReplayRequest, type ReplayRequest } from './history-store.js';
import type { KeySchema } from './keys.js';
import { runScriptConfirmed } from './replication.js';
import type { ReseqRedis, ScriptName } from './scripts.js';
import { readOldestUnsettled } from './status-age.js';

/** One destination as `status` shows it. */
export interface DestinationStatus {
  /** Last sequence ingest gave out (0: none yet). */
  assigned: number;
  /** Last sequence settled: delivered, dropped or skipped (0: none yet). */
  delivered: number;
  /** Dead letters of the destination in the dead-letter list (its dead-letter index). */
  deadLettered: number;
  /** Whether a dead letter holds the destination back now. */
  blocked: boolean;
  /** Sequence of the dead letter that holds it back; null when not blocked. */
  blockedAt: number | null;
  /** Results waiting in its reorder buffer (ahead of their turn, or behind a block). */
  buffered: number;
  /** Results in its result stream not yet moved into the reorder buffer. */
  pendingResults: number;
  /** assigned − delivered: messages accepted and not yet settled. */
  lag: number;
  /**
   * lag − buffered − pendingResults (at least 0): accepted, not settled and not transformed
   * yet: waiting in the input stream or in a transform (retries and backoff included).
   */
  inFlight: number;
  /**
   * Age in seconds of the oldest accepted and unsettled message (sequence delivered + 1), by
   * the reader's clock against ingest's accept time: 0 when lag is 0; null when that message
   * was not found (see `oldestUnsettledAt`).
   */
  lagSeconds: number | null;
  /**
   * Accept time (ms since the epoch) of sequence delivered + 1; null when nothing is unsettled
   * or it was not found (lost, or deeper in a long input stream than the status scan reads).
   */
  oldestUnsettledAt: number | null;
  /** The replay request waiting for or being run by its sender (`reseq replay`); null when none. */
  replay: ReplayRequest | null;
  /** Sequences passed over because of a dead letter. */
  skipped: number;
  /** Whether an operator paused the destination (`reseq destination pause`). */
  paused: boolean;
  /** When it was paused, ms since the epoch; null when not paused. */
  pausedSince: number | null;
  /** Id of the sender that holds the destination's lease; null when none does. */
  activeSender: string | null;
  /** The fencing token of that lease; null when none. */
  fencingToken: number | null;
}

type Replies = [Error | null, unknown][] | null;

function repliesOf(reply: Replies): unknown[] {
  if (!reply) throw new Error('transaction aborted');
  return reply.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

const toInt = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));

/**
 * The destinations an operator can name: those in the config file, in its order, then any
 * other that Redis knows (assigned, settled or blocked: a destination since removed from the
 * config), by name.
 */
export async function knownDestinations(
  redis: Redis,
  keys: KeySchema,
  configured: readonly string[],
): Promise<string[]> {
  const [assigned, settled, blocked] = repliesOf(
    await redis.multi().hkeys(keys.sequences).hkeys(keys.delivered).hkeys(keys.blocked).exec(),
  ) as string[][];
  const known = new Set(configured);
  const extra = [...new Set([...assigned!, ...settled!, ...blocked!])].filter((d) => !known.has(d)).sort();
  return [...configured, ...extra];
}

/**
 * Reads the state of the given destinations, all in one transaction (a consistent snapshot),
 * then the accept time of each one's oldest unsettled message (a read-only script, a moment
 * later: `lagSeconds`, `oldestUnsettledAt`).
 */
export async function readStatus(
  redis: ReseqRedis,
  keys: KeySchema,
  destinations: readonly string[],
  now = Date.now(),
): Promise<Map<string, DestinationStatus>> {
  const out = new Map<string, DestinationStatus>();
  if (destinations.length === 0) return out;
  const multi = redis.multi();
  for (const d of destinations) {
    multi
      .hget(keys.sequences, d)
      .hget(keys.delivered, d)
      .hget(keys.blocked, d)
      .hlen(keys.deadLetterIndex(d))
      .hlen(keys.buffer(d))
      .xlen(keys.results(d))
      .scard(keys.skipped(d))
      .get(keys.lease(d))
      .hget(keys.paused, d)
      .hgetall(keys.replay(d));
  }
  const replies = repliesOf(await multi.exec());
  const oldest = await readOldestUnsettled(redis, keys, destinations);
  destinations.forEach((d, i) => {
    const [
      assigned,
      delivered,
      blockedAt,
      deadLettered,
      buffered,
      pendingResults,
      skipped,
      lease,
      pausedSince,
      replay,
    ] = replies.slice(i * 10, i * 10 + 10);
    const settled = toInt(delivered);
    // A marker at or below the delivered position is stale (left by a sender that lost its
    // lease): it holds nothing back.
    const blocking = blockedAt !== null && toInt(blockedAt) > settled ? toInt(blockedAt) : null;
    const bar = typeof lease === 'string' ? lease.lastIndexOf('|') : -1;
    const lag = Math.max(0, toInt(assigned) - settled);
    // The script read a moment after the transaction: nothing unsettled then counts as 0.
    const oldestAt = lag === 0 ? null : (oldest.get(d) ?? null) || null;
    out.set(d, {
      assigned: toInt(assigned),
      delivered: settled,
      deadLettered: toInt(deadLettered),
      blocked: blocking !== null,
      blockedAt: blocking,
      buffered: toInt(buffered),
      pendingResults: toInt(pendingResults),
      lag,
      inFlight: Math.max(0, lag - toInt(buffered) - toInt(pendingResults)),
      lagSeconds: lag === 0 ? 0 : oldestAt === null ? null : Math.max(0, now - oldestAt) / 1000,
      oldestUnsettledAt: oldestAt,
      replay: decodeReplayRequest((replay ?? {}) as Record<string, string>) ?? null,
      skipped: toInt(skipped),
      paused: pausedSince !== null,
      pausedSince: pausedSince === null ? null : toInt(pausedSince),
      activeSender: typeof lease === 'string' ? lease.slice(0, bar < 0 ? undefined : bar) : null,
      fencingToken: typeof lease === 'string' && bar >= 0 ? Number(lease.slice(bar + 1)) : null,
    });
  });
  return out;
}

/** A destination's pause marker after `pause` or `resume`. */
export interface PauseState {
  destination: string;
  paused: boolean;
  /** When it was paused, ms since the epoch (the first pause, when paused twice); null when not. */
  since: number | null;
  /** Whether this call changed anything (false: it was paused, or running, already). */
  changed: boolean;
}

/**
 * Pauses a destination: its sender finishes the delivery in flight, then sends nothing until
 * {@link resumeDestination}. Ingest and the transform workers go on; results wait in Redis.
 * Pausing a paused destination keeps its first `since`.
 */
export async function pauseDestination(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  now = Date.now(),
): Promise<PauseState> {
  const [created, since] = repliesOf(
    await redis.multi().hsetnx(keys.paused, destination, String(now)).hget(keys.paused, destination).exec(),
  );
  return { destination, paused: true, since: toInt(since), changed: Number(created) === 1 };
}

/** Resumes a paused destination: its sender takes up delivery within its poll interval. */
export async function resumeDestination(redis: Redis, keys: KeySchema, destination: string): Promise<PauseState> {
  const removed = await redis.hdel(keys.paused, destination);
  return { destination, paused: false, since: null, changed: removed === 1 };
}

/** Where a dead letter is: what the stage was, and what its destination does about it. */
export type DeadLetterStage = 'transform' | 'delivery' | 'late' | 'gap';

/**
 * `blocking`: it holds its destination now. `ahead`: its destination has not reached it yet.
 * `passed`: its destination moved past it (skipped, or a late result): it can only be removed.
 */
export type DeadLetterState = 'blocking' | 'ahead' | 'passed';

/** One entry of the dead-letter stream, decoded. */
export interface DeadLetter {
  /** Its id in the dead-letter stream. */
  entryId: string;
  destination: string;
  sequence: number;
  /** The message id. */
  id: string;
  /** Attempts the transform took (for `TRANSFORM_ABANDONED`, the group's delivery count). */
  attempts: number;
  /** A dead-letter reason code, `: ` and the detail. */
  lastError: string;
  stage: DeadLetterStage;
  /** Accept time, ms since the epoch. */
  acceptedAt: number;
  /** Dead-letter time, ms since the epoch. */
  deadLetteredAt: number;
  /**
   * JSON text: the original payload (transform stage), or the transformed payload the
   * destination refused (delivery stage) or that arrived too late.
   */
  payload: string;
  state: DeadLetterState;
}

const PAGE = 500;

function decodeDeadLetter(entryId: string, fields: readonly string[]): Omit<DeadLetter, 'state'> | undefined {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  const destination = f.get('d');
  const sequence = Number(f.get('s'));
  if (!destination || !Number.isSafeInteger(sequence)) return undefined;
  const stage = f.get('stage');
  return {
    entryId,
    destination,
    sequence,
    id: f.get('m') ?? '',
    attempts: Number(f.get('a') ?? 0),
    lastError: f.get('e') ?? '',
    stage: stage === 'delivery' || stage === 'late' || stage === 'gap' ? stage : 'transform',
    acceptedAt: Number(f.get('t') ?? 0),
    deadLetteredAt: Number(f.get('at') ?? 0),
    payload: f.get('p') ?? '',
  };
}

async function withState(redis: Redis, keys: KeySchema, letters: Omit<DeadLetter, 'state'>[]): Promise<DeadLetter[]> {
  if (letters.length === 0) return [];
  const [delivered, blocked] = repliesOf(await redis.multi().hgetall(keys.delivered).hgetall(keys.blocked).exec()) as [
    Record<string, string>,
    Record<string, string>,
  ];
  return letters.map((letter) => {
    const settled = Number(delivered[letter.destination] ?? 0);
    const state: DeadLetterState =
      letter.sequence <= settled
        ? 'passed'
        : Number(blocked[letter.destination] ?? 0) === letter.sequence
          ? 'blocking'
          : 'ahead';
    return { ...letter, state };
  });
}

/**
 * Every dead letter (of one destination, when given), ordered by destination and sequence.
 * Reads the whole dead-letter stream, a page at a time.
 */
export async function listDeadLetters(redis: Redis, keys: KeySchema, destination?: string): Promise<DeadLetter[]> {
  const letters: Omit<DeadLetter, 'state'>[] = [];
  for (let from = '-'; ;) {
    const page = await redis.xrange(keys.deadLetters, from, '+', 'COUNT', PAGE);
    for (const [entryId, fields] of page) {
      const letter = decodeDeadLetter(entryId, fields);
      if (letter && (destination === undefined || letter.destination === destination)) letters.push(letter);
    }
    if (page.length < PAGE) break;
    from = `(${page[page.length - 1]![0]}`;
  }
  letters.sort((a, b) =>
    a.destination === b.destination ? a.sequence - b.sequence : a.destination < b.destination ? -1 : 1,
  );
  return withState(redis, keys, letters);
}

/**
 * The dead letter of `destination` at `sequence`.
 * @throws {DeadLetterNotFoundError} when there is none.
 */
export async function getDeadLetter(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  sequence: number,
): Promise<DeadLetter> {
  const entryId = await redis.hget(keys.deadLetterIndex(destination), String(sequence));
  const entry = entryId === null ? undefined : (await redis.xrange(keys.deadLetters, entryId, entryId))[0];
  const letter = entry && decodeDeadLetter(entry[0], entry[1]);
  if (!letter) throw new DeadLetterNotFoundError(destination, sequence);
  const [withItsState] = await withState(redis, keys, [letter]);
  return withItsState!;
}

/** What `dlq retry` did. */
export interface RetryOutcome {
  /**
   * `transform`: the message is back on the input stream, to be transformed again.
   * `delivery`: the transformed payload is back in the reorder buffer, to be delivered again.
   */
  stage: 'transform' | 'delivery';
  /** The new input-stream entry (transform stage). */
  inputEntryId: string | undefined;
}

/** What `dlq skip` did: `skipped` its place now holds "deliver nothing"; `removed` it was passed already. */
export type SkipOutcome = 'skipped' | 'removed';

/** Script failure codes of the operator scripts, mapped to the error catalogue here only. */
function operatorError(reply: unknown[], destination: string, sequence: number): Error | undefined {
  switch (reply[0]) {
    case 'OK':
      return undefined;
    case 'NO_DEAD_LETTER':
      return new DeadLetterNotFoundError(destination, sequence);
    case 'LOST':
      return new DeadLetterLostError(destination, sequence);
    case 'ALREADY_PASSED':
      return new DeadLetterPassedError(destination, sequence, Number(reply[1]));
    default:
      return new Error(`unexpected reply ${JSON.stringify(reply)}`);
  }
}

/**
 * Runs an operator script, confirmed by `RESEQ_WAIT_REPLICAS` replicas where the connection has
 * that policy (a failover must not undo a release the operator was told about).
 * @throws the script's refusal (nothing was written), else {@link ReplicasUnavailableError}
 *   when the change was made on the master but not confirmed in time.
 */
async function runOperatorScript(
  redis: ReseqRedis,
  keys: KeySchema,
  name: ScriptName,
  scriptKeys: readonly string[],
  destination: string,
  sequence: number,
): Promise<unknown[]> {
  const { reply, unconfirmed } = await runScriptConfirmed(redis, keys.waitMark, name, scriptKeys, [
    destination,
    sequence,
  ]);
  const error = operatorError(reply as unknown[], destination, sequence);
  if (error) throw error;
  if (unconfirmed) throw unconfirmed;
  return reply as unknown[];
}

/**
 * Gives the dead letter of `destination` at `sequence` another go, in its own place: see
 * lua/dlq-retry.lua.
 * @throws {DeadLetterNotFoundError} when it is not a dead letter of that destination.
 * @throws {DeadLetterPassedError} when the destination has passed that sequence already.
 * @throws {ReplicasUnavailableError} when done but not confirmed by the replicas in time.
 */
export async function retryDeadLetter(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  sequence: number,
): Promise<RetryOutcome> {
  const reply = await runOperatorScript(
    redis,
    keys,
    'dlq-retry',
    [
      keys.delivered,
      keys.blocked,
      keys.deadLetters,
      keys.input,
      keys.deadLetterIndex(destination),
      keys.buffer(destination),
      keys.results(destination),
      keys.skipped(destination),
    ],
    destination,
    sequence,
  );
  return {
    stage: reply[1] === 'delivery' ? 'delivery' : 'transform',
    inputEntryId: typeof reply[2] === 'string' && reply[2] !== '' ? reply[2] : undefined,
  };
}

/**
 * Gives the dead letter of `destination` at `sequence` up: the destination's order moves past
 * it (see lua/dlq-skip.lua). For a sequence already passed, only removes it from the list.
 * @throws {DeadLetterNotFoundError} when it is not a dead letter of that destination.
 * @throws {ReplicasUnavailableError} when done but not confirmed by the replicas in time.
 */
export async function skipDeadLetter(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  sequence: number,
): Promise<SkipOutcome> {
  const reply = await runOperatorScript(
    redis,
    keys,
    'dlq-skip',
    [
      keys.delivered,
      keys.blocked,
      keys.deadLetters,
      keys.deadLetterIndex(destination),
      keys.buffer(destination),
      keys.results(destination),
      keys.skipped(destination),
    ],
    destination,
    sequence,
  );
  return reply[1] === 'removed' ? 'removed' : 'skipped';
}
