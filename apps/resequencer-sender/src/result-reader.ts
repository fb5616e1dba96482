/**
 * Reads the result streams of every destination this sender holds, in one blocking XREAD on a
 * connection of its own, and hands the values to the lanes at once: they stay in their stream
 * until delivered, and the `advance` step that records their delivery deletes them there. Only
 * what needs the reorder buffer's hash is moved into it, with one fenced `buffer` script call
 * per read: dead results (blocking on one, and an operator's `dlq retry` or `skip`, act on the
 * buffer), duplicates and malformed entries (the script deletes them, or dead-letters a late
 * value), and values still waiting for an earlier sequence {@link MOVE_AFTER_MS} after they were
 * read. A stream thus holds a few seconds of results at most, and a value delivered within that
 * time costs Redis one write of its payload instead of three (stream, buffer hash, deletion).
 *
 * A lane delivers a value before anything about it is confirmed, and that is safe: until its
 * delivery is recorded the value is still in its stream (or in the buffer), where a new holder
 * of the lease, or this one reloading, finds it again (loadLaneState reads both). Where writes
 * are confirmed by replicas (`moveFirst`), every result is moved first and reaches its lane only
 * once the move is confirmed, as the worker's `complete` (not confirmed itself) is confirmed
 * with it: a delivered result is then never one a failover takes back (guarantees.md).
 */
import { sleep, untilAborted, type Logger } from '@reseq/runtime';
import {
  bufferResults,
  readResults,
  ReplicasUnavailableError,
  ResultStreams,
  type KeySchema,
  type ReseqRedis,
  type ResultEntry,
} from '@reseq/store';
import type { Redis } from 'ioredis';
import type { DestinationLane } from './destination-lane.js';

/** How long one XREAD blocks; also how soon a newly acquired lane joins the read. */
const BLOCK_MS = 500;

/** Pause before buffering a batch again that replicas did not confirm, in ms. */
const UNCONFIRMED_RETRY_MS = 200;

/**
 * How long a value read from its stream may wait there for an earlier sequence before it is
 * moved into the reorder buffer's hash, in ms: what bounds a stream where a lane is held up (a
 * slow transform, a gap, a paused or blocked destination).
 */
export const MOVE_AFTER_MS = 2000;

/** How often the values that wait are looked over, in ms. */
const SWEEP_MS = 100;

/** What one `buffer` call moves for a destination, with the lane it is for. */
interface Move {
  leaseValue: string;
  entries: ResultEntry[];
  malformed: string[];
  lane: DestinationLane;
  /** Of `entries`, those the lane gets once moved, for the first time. */
  handOver: ResultEntry[];
  /** Of `entries`, those the lane holds already; given again once moved (see #move). */
  again: ResultEntry[];
}

/** One `buffer` call's moves, by destination. */
type Moves = Map<string, Move>;

/** Values a lane holds straight from its stream, in the order they were read (a queue). */
interface Unmoved {
  items: { entry: ResultEntry; readAt: number }[];
  /** Index of the first item still waiting. */
  head: number;
}

/** Options of {@link ResultReader}. */
export interface ResultReaderOptions {
  redis: ReseqRedis;
  blocking: Redis;
  keys: KeySchema;
  batchSize: number;
  logger: Logger;
  /** The lanes to read for, at the moment of asking. */
  lanes: () => ReadonlyMap<string, DestinationLane>;
  /** Changes whenever the sender's set of lanes does: the read plan is made again then. */
  lanesVersion: () => number;
  /** Called when the buffer script shows a lease was lost. */
  onFenced: (destination: string) => void;
  /** Move every result into the buffer before its lane gets it (writes confirmed by replicas). */
  moveFirst?: boolean;
}

/** The lanes one read covers, their streams, and the version of the sender's lanes they are of. */
interface ReadPlan {
  version: number;
  lanes: ReadonlyMap<string, DestinationLane>;
  /** The lanes in the order of `streams.destinations`. */
  ordered: readonly DestinationLane[];
  streams: ResultStreams;
}

/** The sender's read loop. */
export class ResultReader {
  readonly #options: ResultReaderOptions;
  #plan: ReadPlan | undefined;
  /**
   * How far each lane's stream was read. Forgotten after a failure: reading starts again at the
   * beginning of the streams, which hold only what is not yet delivered or moved.
   */
  #readCursors = new WeakMap<DestinationLane, string>();
  /** Per lane, the values handed over straight from its stream and not yet delivered or moved. */
  readonly #unmoved = new Map<DestinationLane, Unmoved>();
  #sweptAt = 0;
  readonly #stopping = new AbortController();
  #loop: Promise<void> = Promise.resolve();

  constructor(options: ResultReaderOptions) {
    this.#options = options;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#options.blocking.disconnect();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { blocking, batchSize, logger } = this.#options;
    // The moves of the last read, under way while the next read waits for more (see #move).
    let moving: Promise<boolean> | undefined;
    try {
      while (!this.#stopping.signal.aborted) {
        const plan = this.#currentPlan();
        if (plan.ordered.length === 0) {
          await sleep(BLOCK_MS, this.#stopping.signal);
          continue;
        }
        try {
          const cursors = plan.ordered.map((lane) => this.#readCursors.get(lane) ?? '0-0');
          // A read queued while the connection reconnects never settles once stop() disconnected
          // it (ioredis keeps it for a reconnect that no longer comes): stop waiting for it then.
          const read = await untilAborted(
            readResults(blocking, plan.streams, cursors, batchSize, BLOCK_MS),
            this.#stopping.signal,
          );
          if (read === undefined) return;
          // Moves are made, and handed to the lanes, in the order they were read.
          const previous = moving;
          moving = undefined;
          if (previous && !(await previous)) {
            // Not moved: read the streams again from their beginning (moving is idempotent).
            this.#readCursors = new WeakMap();
            await sleep(500, this.#stopping.signal);
            continue;
          }
          // Lanes opened or closed while we read: look each destination up again.
          const current = this.#options.lanesVersion() === plan.version ? plan.lanes : this.#options.lanes();
          const moves: Moves = new Map();
          const now = performance.now();
          for (const [destination, batch] of read) {
            const lane = plan.lanes.get(destination);
            // A lane replaced while we read: leave its entries for the new one.
            if (!lane || current.get(destination) !== lane) continue;
            this.#readCursors.set(lane, batch.lastId);
            const move = this.#moveOf(moves, lane);
            move.malformed.push(...batch.malformed);
            // Dead results reach the lane once moved; the others now (unless every one is moved).
            const handed: ResultEntry[] = [];
            for (const entry of batch.entries) {
              if (entry.kind !== 'dead' && !this.#options.moveFirst) handed.push(entry);
              else {
                move.entries.push(entry);
                move.handOver.push(entry);
              }
            }
            const offered = handed.length > 0 ? lane.offer(handed) : [];
            // Held now, or held already from this very entry (a lane that loaded it from the
            // stream when it opened or reloaded): either way it waits in the stream from now on.
            handed.forEach((entry, i) => {
              if (offered[i] === 'duplicate') move.entries.push(entry);
              else this.#unmovedOf(lane).items.push({ entry, readAt: now });
            });
          }
          this.#sweep(moves, current, now);
          for (const [destination, move] of moves)
            if (move.entries.length === 0 && move.malformed.length === 0) moves.delete(destination);
          if (moves.size > 0) moving = this.#move(moves);
        } catch (err) {
          if (this.#stopping.signal.aborted) return;
          logger.warn({ err }, 'reading results failed; retrying');
          this.#readCursors = new WeakMap();
          await sleep(500, this.#stopping.signal);
        }
      }
    } finally {
      await moving;
    }
  }

  #moveOf(moves: Moves, lane: DestinationLane): Move {
    let move = moves.get(lane.destination);
    if (!move)
      moves.set(
        lane.destination,
        (move = { leaseValue: lane.leaseValue, entries: [], malformed: [], lane, handOver: [], again: [] }),
      );
    return move;
  }

  #unmovedOf(lane: DestinationLane): Unmoved {
    let unmoved = this.#unmoved.get(lane);
    if (!unmoved) this.#unmoved.set(lane, (unmoved = { items: [], head: 0 }));
    return unmoved;
  }

  /**
   * Forgets the values their lanes have settled, and adds those that waited
   * {@link MOVE_AFTER_MS} to `moves`. A lane that settled a value has recorded it or is
   * recording it; should that fail, the lane reloads and finds the value still in its stream.
   */
  #sweep(moves: Moves, lanes: ReadonlyMap<string, DestinationLane>, now: number): void {
    if (now - this.#sweptAt < SWEEP_MS) return;
    this.#sweptAt = now;
    for (const [lane, unmoved] of this.#unmoved) {
      if (lanes.get(lane.destination) !== lane) {
        this.#unmoved.delete(lane);
        continue;
      }
      const { items } = unmoved;
      const delivered = lane.delivered;
      while (unmoved.head < items.length && items[unmoved.head]!.entry.sequence <= delivered) unmoved.head++;
      // The oldest still waits less than MOVE_AFTER_MS: so do the others, read after it.
      if (unmoved.head < items.length && now - items[unmoved.head]!.readAt >= MOVE_AFTER_MS) {
        const waiting = items.slice(unmoved.head).filter(({ entry }) => entry.sequence > delivered);
        const due = waiting.filter(({ readAt }) => now - readAt >= MOVE_AFTER_MS);
        const move = this.#moveOf(moves, lane);
        for (const { entry } of due) {
          move.entries.push(entry);
          move.again.push(entry);
        }
        unmoved.items = waiting.filter(({ readAt }) => now - readAt < MOVE_AFTER_MS);
        unmoved.head = 0;
      } else if (unmoved.head > 1024 && unmoved.head * 2 > items.length) {
        unmoved.items = items.slice(unmoved.head);
        unmoved.head = 0;
      }
      if (unmoved.head >= unmoved.items.length) this.#unmoved.delete(lane);
    }
  }

  /**
   * Moves entries into the reorder buffers (the `buffer` script) and hands them to the lanes:
   * dead results (every result, with `moveFirst`) for the first time; values that waited too
   * long again, which a lane that reloaded its state meanwhile takes back and one that did not
   * ignores (a duplicate needs nothing more: the script deletes it). Not awaited by the read loop, whose next
   * read goes out meanwhile. Resolves false where they could not be moved; the loop then reads
   * again from the streams' beginning.
   */
  async #move(moves: Moves): Promise<boolean> {
    try {
      const outcome = await this.#bufferConfirmed(moves);
      for (const [destination, move] of moves) {
        if (outcome.get(destination) === -1) {
          this.#options.onFenced(destination);
          continue;
        }
        if (move.malformed.length > 0)
          this.#options.logger.warn({ destination, entryIds: move.malformed }, 'dropped malformed result entries');
        if (move.handOver.length > 0) move.lane.offer(move.handOver);
        if (move.again.length > 0) move.lane.offer(move.again, false);
      }
      return true;
    } catch (err) {
      if (!this.#stopping.signal.aborted) this.#options.logger.warn({ err }, 'moving results failed; retrying');
      return false;
    }
  }

  /** The read plan for the sender's lanes now, made again only when they changed. */
  #currentPlan(): ReadPlan {
    const version = this.#options.lanesVersion();
    if (this.#plan?.version === version) return this.#plan;
    const lanes = new Map(this.#options.lanes());
    this.#plan = {
      version,
      lanes,
      ordered: [...lanes.values()],
      streams: new ResultStreams(this.#options.keys, [...lanes.keys()]),
    };
    return this.#plan;
  }

  /**
   * Moves entries. Where replicas did not confirm it, moves the same ones again (the script is
   * idempotent; the entries are already gone from the result stream, so they cannot be read
   * again) until they do: dead results reach the lanes only once confirmed.
   */
  async #bufferConfirmed(moves: Moves): Promise<Map<string, number>> {
    const { redis, keys, logger } = this.#options;
    for (let attempt = 1; ; attempt++) {
      try {
        return await bufferResults(redis, keys, moves);
      } catch (err) {
        if (!(err instanceof ReplicasUnavailableError) || this.#stopping.signal.aborted) throw err;
        if (attempt === 1 || attempt % 10 === 0)
          logger.warn({ err, attempt }, 'moved results not confirmed by enough replicas; moving them again');
        await sleep(UNCONFIRMED_RETRY_MS, this.#stopping.signal);
      }
    }
  }
}
