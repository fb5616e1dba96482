/**
 * Reads the result streams of every destination this sender holds, in one blocking XREAD on a
 * connection of its own, and moves each batch into the reorder buffers with one fenced
 * `buffer` script call before handing the results to the lanes. The next read goes out while a
 * batch is being buffered; batches are buffered and handed over in the order they were read.
 */
import { sleep, type Logger } from '@reseq/runtime';
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

/** A read's results per destination, with the lane they go to. */
type Batches = Map<
  string,
  { leaseValue: string; entries: ResultEntry[]; malformed: string[]; lastId: string; lane: DestinationLane }
>;

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
   * How far each lane's stream was read; ahead of `lane.cursor` (how far it was buffered) while
   * a batch is being buffered. Forgotten after a failure, so reading starts again at the cursors.
   */
  #readCursors = new WeakMap<DestinationLane, string>();
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
    // A read queued while the connection reconnects never settles once stop() disconnected it
    // (ioredis keeps it for a reconnect that no longer comes): stop waiting for it then.
    const stopped = new Promise<undefined>((resolve) =>
      this.#stopping.signal.addEventListener('abort', () => resolve(undefined), { once: true }),
    );
    // The batch read last, being buffered while the next read waits for more (see #buffer).
    let buffering: Promise<boolean> | undefined;
    try {
      while (!this.#stopping.signal.aborted) {
        const plan = this.#currentPlan();
        if (plan.ordered.length === 0) {
          await sleep(BLOCK_MS, this.#stopping.signal);
          continue;
        }
        try {
          const cursors = plan.ordered.map((lane) => this.#readCursors.get(lane) ?? lane.cursor);
          const read = await Promise.race([readResults(blocking, plan.streams, cursors, batchSize, BLOCK_MS), stopped]);
          if (read === undefined) return;
          // Batches are buffered, and handed to the lanes, in the order they were read.
          const previous = buffering;
          buffering = undefined;
          if (previous && !(await previous)) {
            // Not buffered: read again from where the lanes' buffers end, this read included.
            this.#readCursors = new WeakMap();
            await sleep(500, this.#stopping.signal);
            continue;
          }
          if (read.size === 0) continue;
          // Lanes opened or closed while we read: look each destination up again.
          const current = this.#options.lanesVersion() === plan.version ? plan.lanes : this.#options.lanes();
          const batches: Batches = new Map();
          for (const [destination, batch] of read) {
            const lane = plan.lanes.get(destination);
            // A lane replaced while we read: leave its entries for the new one.
            if (!lane || current.get(destination) !== lane) continue;
            batches.set(destination, { ...batch, leaseValue: lane.leaseValue, lane });
            this.#readCursors.set(lane, batch.lastId);
          }
          if (batches.size > 0) buffering = this.#buffer(batches);
        } catch (err) {
          if (this.#stopping.signal.aborted) return;
          logger.warn({ err }, 'reading results failed; retrying');
          this.#readCursors = new WeakMap();
          await sleep(500, this.#stopping.signal);
        }
      }
    } finally {
      await buffering;
    }
  }

  /**
   * Moves a batch into the reorder buffers and hands it to the lanes. Not awaited by the read
   * loop, whose next read goes out meanwhile: results that complete during this round trip are
   * read at once instead of after it. Resolves false where the batch could not be buffered;
   * the loop then reads again from the lanes' cursors (buffering is idempotent).
   */
  async #buffer(batches: Batches): Promise<boolean> {
    try {
      const outcome = await this.#bufferConfirmed(batches);
      for (const [destination, batch] of batches) {
        if (outcome.get(destination) === -1) {
          this.#options.onFenced(destination);
          continue;
        }
        if (batch.malformed.length > 0)
          this.#options.logger.warn({ destination, entryIds: batch.malformed }, 'dropped malformed result entries');
        batch.lane.cursor = batch.lastId;
        batch.lane.offer(batch.entries);
      }
      return true;
    } catch (err) {
      if (!this.#stopping.signal.aborted) this.#options.logger.warn({ err }, 'buffering results failed; retrying');
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
   * Buffers a batch. Where replicas did not confirm it, buffers the same batch again (the
   * script is idempotent; the entries are already gone from the result stream, so they cannot
   * be read again) until they do: results reach the lanes only once confirmed.
   */
  async #bufferConfirmed(batches: Batches): Promise<Map<string, number>> {
    const { redis, keys, logger } = this.#options;
    for (let attempt = 1; ; attempt++) {
      try {
        return await bufferResults(redis, keys, batches);
      } catch (err) {
        if (!(err instanceof ReplicasUnavailableError) || this.#stopping.signal.aborted) throw err;
        if (attempt === 1 || attempt % 10 === 0)
          logger.warn({ err, attempt }, 'buffered results not confirmed by enough replicas; buffering again');
        await sleep(UNCONFIRMED_RETRY_MS, this.#stopping.signal);
      }
    }
  }
}
