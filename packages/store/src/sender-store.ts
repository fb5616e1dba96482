/**
 * Step 3: the resequencer-sender. It leases destinations (fenced), moves their results from
 * the result streams into reorder buffers (lua/buffer.lua), and records delivery progress
 * only under its lease (lua/advance.lua).
 */
import type { Redis } from 'ioredis';
import { decodeBuffered, decodeResultEntry, encodeBuffered, type Result, type ResultEntry } from './codec.js';
import type { KeySchema } from './keys.js';
import { runConfirmedScript } from './replication.js';
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
 * @throws {ReplicasUnavailableError} where writes are confirmed (RESEQ_WAIT_REPLICAS) and this
 *   one was not: use none of the leases (a failover could hand the same token out again); the
 *   next call extends them and confirms again.
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
  const reply = (await runConfirmedScript(
    redis,
    keys.waitMark,
    'lease-acquire',
    [keys.fences, ...destinations.map((d) => keys.lease(d))],
    [senderId, ttlMs, maxNew, ...destinations],
  )) as string[];
  destinations.forEach((d, i) => {
    if (reply[i]) held.set(d, reply[i]);
  });
  return held;
}

/**
 * Extends held leases; returns the destinations whose lease was lost.
 * @throws {ReplicasUnavailableError} where the renewal was not confirmed: it does not count.
 */
export async function renewLeases(
  redis: ReseqRedis,
  keys: KeySchema,
  leases: ReadonlyMap<string, string>,
  ttlMs: number,
): Promise<string[]> {
  if (leases.size === 0) return [];
  const destinations = [...leases.keys()];
  const reply = (await runConfirmedScript(
    redis,
    keys.waitMark,
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
  /**
   * The reorder buffer's results, then the values and drops still in the result stream (read
   * by a sender but not moved into the buffer: result-reader.ts), up to {@link STREAM_LOAD_LIMIT}.
   */
  buffered: Result[];
}

/** How many result-stream entries a lane's state takes along; the reader reads the rest. */
const STREAM_LOAD_LIMIT = 1000;

/** Reads a destination's delivered position, block marker, reorder buffer and unmoved results. */
export async function loadLaneState(redis: Redis, keys: KeySchema, destination: string): Promise<LaneState> {
  const reply = await redis
    .multi()
    .hget(keys.delivered, destination)
    .hget(keys.blocked, destination)
    .hgetall(keys.buffer(destination))
    .xrange(keys.results(destination), '-', '+', 'COUNT', STREAM_LOAD_LIMIT)
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
  // A dead result is acted on only once it is in the buffer (blocking checks it there).
  for (const [entryId, fields] of reply[3]![1] as [string, string[]][]) {
    const result = decodeResultEntry(entryId, fields);
    if (result && result.kind !== 'dead') buffered.push(result);
  }
  return { delivered, blockedAt: blocked === null ? undefined : Number(blocked), buffered };
}

/** What one read of a destination's result stream brought. */
export interface ResultBatch {
  entries: ResultEntry[];
  /** The id of the last entry read, well-formed or not: where the next read starts. */
  lastId: string;
  /** Ids of entries that could not be decoded (deleted, never delivered). */
  malformed: string[];
}

/**
 * The result streams one blocking read covers, one per destination, in a fixed order. A sender
 * reads them hundreds of times a second while its set of destinations rarely changes, so the
 * key names and the lookup from a reply's stream key back to its destination are made once per
 * set rather than once per read.
 */
export class ResultStreams {
  readonly destinations: readonly string[];
  /** XREAD's arguments up to the stream ids: COUNT and BLOCK are filled in per read. */
  readonly #head: readonly (string | number)[];
  readonly #destinationOf: ReadonlyMap<string, string>;

  constructor(keys: KeySchema, destinations: readonly string[]) {
    this.destinations = [...destinations];
    const streams = this.destinations.map((d) => keys.results(d));
    this.#head = ['COUNT', 0, 'BLOCK', 0, 'STREAMS', ...streams];
    this.#destinationOf = new Map(streams.map((key, i) => [key, this.destinations[i]!]));
  }

  /** XREAD's arguments: `cursors` in the order of {@link destinations}. */
  args(cursors: readonly string[], count: number, blockMs: number): (string | number)[] {
    const args = [...this.#head, ...cursors];
    args[1] = count;
    args[3] = blockMs;
    return args;
  }

  /** The destination a reply's stream key belongs to. */
  destinationOf(streamKey: string): string | undefined {
    return this.#destinationOf.get(streamKey);
  }
}

/**
 * Reads new results of several destinations (blocking up to `blockMs`), from the given stream
 * positions (`cursors`, in the order of `streams.destinations`). Use a connection reserved for
 * blocking reads. Destinations with nothing new are left out of the answer.
 */
export async function readResults(
  blocking: Redis,
  streams: ResultStreams,
  cursors: readonly string[],
  count: number,
  blockMs: number,
): Promise<Map<string, ResultBatch>> {
  const out = new Map<string, ResultBatch>();
  if (streams.destinations.length === 0) return out;
  if (cursors.length !== streams.destinations.length)
    throw new Error(`readResults: ${cursors.length} cursors for ${streams.destinations.length} streams`);
  const reply = (await blocking.call('XREAD', streams.args(cursors, count, blockMs))) as
    [key: string, entries: [id: string, fields: string[]][]][] | null;
  for (const [key, raw] of reply ?? []) {
    const destination = streams.destinationOf(key);
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
 * streams, in one script call, fenced by the leases. A value for a sequence that was skipped
 * goes to the dead-letter stream as late instead. Returns destination -> number of results
 * not buffered (duplicates, withdrawn by an operator, late), or -1 where the lease was lost
 * (nothing moved).
 * @throws {ReplicasUnavailableError} where writes are confirmed and this one was not.
 */
export async function bufferResults(
  redis: ReseqRedis,
  keys: KeySchema,
  batches: ReadonlyMap<string, { leaseValue: string; entries: readonly ResultEntry[]; malformed: readonly string[] }>,
): Promise<Map<string, number>> {
  const scriptKeys = [keys.delivered, keys.deadLetters];
  const args: (string | number)[] = [batches.size];
  for (const [destination, { leaseValue, entries, malformed }] of batches) {
    scriptKeys.push(
      keys.lease(destination),
      keys.buffer(destination),
      keys.results(destination),
      keys.skipped(destination),
      keys.deadLetterIndex(destination),
    );
    args.push(destination, leaseValue, entries.length + malformed.length);
    for (const entry of entries) args.push(entry.entryId, entry.sequence, encodeBuffered(entry));
    // Malformed entries get sequence 0: never buffered, always deleted.
    for (const entryId of malformed) args.push(entryId, 0, '');
  }
  // Confirmed before the results are handed to a lane: nothing is delivered that a failover
  // could take back. Unconfirmed, the same call can be repeated (it is idempotent).
  const reply = (await runConfirmedScript(redis, keys.waitMark, 'buffer', scriptKeys, args)) as number[];
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
  /**
   * The step passes its sequences without delivering them because of a dead letter: they are
   * recorded as skipped, so a result that still turns up for one is dead-lettered as late.
   */
  skipped?: boolean;
  /**
   * Most delivered values to keep in the destination's history for `reseq replay`
   * (`sender.historyLength`; about, trimmed with `MAXLEN ~`); 0 or absent keeps none.
   */
  history?: number;
  /**
   * The settled results the sender took straight from the result stream, as [sequence, entry
   * id]: a recorded step deletes those entries (advance.lua, "results still in the stream").
   */
  inStream?: readonly (readonly [sequence: number, entryId: string])[];
}

/** What recording a step answered. */
export type AdvanceOutcome = 'recorded' | 'already' | 'fenced' | 'out-of-turn';

const ADVANCE_OUTCOMES: Record<number, AdvanceOutcome> = {
  1: 'recorded',
  0: 'already',
  [-1]: 'fenced',
  [-2]: 'out-of-turn',
};

/**
 * Records the progress of several destinations in one script call, fenced by their leases;
 * the values a step settles go to the destination's history (see {@link AdvanceStep.history}).
 * @throws {ReplicasUnavailableError} where writes are confirmed and this one was not.
 */
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
  // The trailing parts of the script's KEYS and ARGV: skipped sets and flags, then history
  // streams and lengths, one per step each.
  for (const step of steps) {
    scriptKeys.push(keys.skipped(step.destination));
    args.push(step.skipped ? '1' : '0');
  }
  for (const step of steps) {
    scriptKeys.push(keys.history(step.destination));
    args.push(step.history ?? 0);
  }
  for (const step of steps) {
    scriptKeys.push(keys.results(step.destination));
    args.push(step.inStream?.map(([sequence, entryId]) => `${sequence}=${entryId}`).join(' ') ?? '');
  }
  // Confirmed before the next delivery; unconfirmed, the caller records the same steps again.
  const reply = (await runConfirmedScript(redis, keys.waitMark, 'advance', scriptKeys, args)) as number[];
  return reply.map((code) => ADVANCE_OUTCOMES[code] ?? 'out-of-turn');
}

/** Marks a destination as blocked by the dead letter at `sequence` (for status and operators). */
export async function markBlocked(redis: Redis, keys: KeySchema, destination: string, sequence: number): Promise<void> {
  await redis.hset(keys.blocked, destination, sequence);
}

/**
 * Whether a destination's reorder buffer still holds a dead result at `sequence` (an operator's
 * `dlq retry` or `dlq skip` takes it out).
 */
export async function holdsDeadResult(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  sequence: number,
): Promise<boolean> {
  const value = await redis.hget(keys.buffer(destination), String(sequence));
  return decodeBuffered(sequence, value ?? '')?.kind === 'dead';
}

/** Reads a destination's block marker (undefined when it is not blocked). */
export async function readBlocked(redis: Redis, keys: KeySchema, destination: string): Promise<number | undefined> {
  const value = await redis.hget(keys.blocked, destination);
  return value === null ? undefined : Number(value);
}

/** Whether an operator paused `destination` (`reseq destination pause`). */
export async function readPaused(redis: Redis, keys: KeySchema, destination: string): Promise<boolean> {
  return (await redis.hexists(keys.paused, destination)) === 1;
}

/**
 * Records a result the destination refused for good (a 4xx) as a dead letter, with the same
 * fields a transform's dead letter has plus `stage: delivery`, and indexes it under its
 * sequence, in one script call (lua/dead-letter.lua).
 * @returns the dead-letter entry's id.
 */
export async function deadLetterDelivery(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  result: Result,
  error: string,
  stage: 'delivery' | 'gap' = 'delivery',
): Promise<string> {
  return (await runScript(
    redis,
    'dead-letter',
    [keys.deadLetters, keys.deadLetterIndex(destination)],
    [
      destination,
      result.sequence,
      result.id,
      result.attempts,
      error,
      result.acceptedAt,
      Date.now(),
      result.body,
      stage,
    ],
  )) as string;
}

/**
 * Marks a destination as blocked by the dead letter at `sequence`, unless that dead letter
 * was released meanwhile (an operator's `dlq retry` or `dlq skip` while the sender still held
 * it in memory), in one script call (lua/block.lua). `stage`: `transform` when the reorder
 * buffer holds the dead result, `delivery` when the destination refused the buffered value.
 * @returns true when marked; false when the dead letter is gone and the caller must reload.
 */
export async function blockOnDeadLetter(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  sequence: number,
  stage: 'transform' | 'delivery',
): Promise<boolean> {
  const reply = await runScript(
    redis,
    'block',
    [keys.blocked, keys.buffer(destination), keys.deadLetterIndex(destination)],
    [destination, sequence, stage],
  );
  return reply === 1;
}

/**
 * Whether a destination's sequence still exists anywhere on its way: as an input-stream entry
 * (unread, or pending with a worker), in the destination's result stream, or in its reorder
 * buffer. Looked at in the order a message travels, so one moving on meanwhile (each step is
 * atomic) is still found at its next stop. Pages through the input stream: meant for the rare
 * gap check, not the hot path.
 */
export async function sequenceExists(
  redis: Redis,
  keys: KeySchema,
  destination: string,
  sequence: number,
): Promise<boolean> {
  const wanted = String(sequence);
  const matches = (fields: readonly string[], needDestination: boolean): boolean => {
    let d = !needDestination;
    let s = false;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i] === 'd' && fields[i + 1] === destination) d = true;
      if (fields[i] === 's' && fields[i + 1] === wanted) s = true;
    }
    return d && s;
  };
  for (const [key, needDestination] of [
    [keys.input, true],
    [keys.results(destination), false],
  ] as const) {
    let start = '-';
    for (;;) {
      const page = await redis.xrange(key, start, '+', 'COUNT', 1000);
      if (page.some(([, fields]) => matches(fields, needDestination))) return true;
      if (page.length < 1000) break;
      start = `(${page[page.length - 1]![0]}`;
    }
  }
  return (await redis.hexists(keys.buffer(destination), wanted)) === 1;
}

/**
 * Records a sequence that exists nowhere any more (lost in a failover without WAIT, or trimmed
 * by hand) as a dead letter with stage `gap`, and puts a dead result in its place in the reorder
 * buffer (unless a result turned up meanwhile), so the destination's `onDeadLetter` policy and
 * the operator commands treat it like any other dead letter.
 */
export async function recordLostSequence(
  redis: ReseqRedis,
  keys: KeySchema,
  destination: string,
  sequence: number,
  reason: string,
): Promise<void> {
  const lost: Result = { kind: 'dead', id: '', sequence, acceptedAt: 0, attempts: 0, body: reason };
  await deadLetterDelivery(redis, keys, destination, lost, reason, 'gap');
  await redis.hsetnx(keys.buffer(destination), String(sequence), encodeBuffered(lost));
}
