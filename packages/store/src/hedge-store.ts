/**
 * Step 2, optional: hedged dispatch (`worker.hedgeAfterMs`). A worker whose transform attempt runs
 * long asks for a second copy on another worker ({@link requestHedge}); workers with room take
 * such requests, and learn which entries they watch another copy has finished
 * ({@link pollHedges}, lua/hedge-poll.lua). Neither touches the consumer group: the owner keeps
 * the entry pending, and both copies record their outcome through the `complete` script, which
 * keeps only the first. With hedging off nothing here runs.
 */
import { decodeInputEntry, type InputEntry } from './codec.js';
import { WORKER_GROUP, type KeySchema } from './keys.js';
import { runScript, type ReseqRedis } from './scripts.js';

/** How many of the oldest hedge requests one {@link pollHedges} looks at. */
const HEDGE_LOOK = 128;

/**
 * Asks for a hedge of an input entry whose attempt `attempt` has run long on `consumer`: one
 * `ZADD` to the hedge requests, taken by the first other worker with room.
 */
export async function requestHedge(
  redis: ReseqRedis,
  keys: KeySchema,
  entryId: string,
  attempt: number,
  consumer: string,
  now = Date.now(),
): Promise<void> {
  await redis.zadd(keys.hedges, now, `${entryId}|${attempt}|${consumer}`);
}

/** A hedge request a worker took: run `attempt` of `entry` once, for `requester`. */
export interface TakenHedge {
  entry: InputEntry;
  /** The attempt that ran long on the requester, as the transform's `message.attempt`. */
  attempt: number;
  /** The requester's consumer name. */
  requester: string;
}

/** What one {@link pollHedges} found. */
export interface HedgePoll {
  /** Requests of other workers, taken by the caller (each handed to one worker only). */
  taken: TakenHedge[];
  /** The watched entry ids that are no longer pending: another copy finished them. */
  gone: string[];
}

/**
 * One look at the hedge requests, in one script call: takes up to `room` requests of other
 * workers (never the caller's own), removes requests whose entry is already completed, and
 * reports which of the `watched` entries are no longer pending. Without room it only watches:
 * the requests are left for (and cleaned by) a worker that has some.
 */
export async function pollHedges(
  redis: ReseqRedis,
  keys: KeySchema,
  consumer: string,
  room: number,
  watched: readonly string[],
): Promise<HedgePoll> {
  const [rawTaken, gone] = (await runScript(
    redis,
    'hedge-poll',
    [keys.hedges, keys.input],
    [WORKER_GROUP, consumer, Math.max(0, room), room > 0 ? HEDGE_LOOK : 0, ...watched],
  )) as [[string, string, string, string[]][], string[]];
  const taken: TakenHedge[] = [];
  for (const [entryId, attempt, requester, fields] of rawTaken) {
    const entry = decodeInputEntry(entryId, fields);
    // A foreign entry is the read loop's to discard; as a hedge it is simply not run.
    if (entry) taken.push({ entry, attempt: Math.max(1, Number(attempt) || 1), requester });
  }
  return { taken, gone };
}
