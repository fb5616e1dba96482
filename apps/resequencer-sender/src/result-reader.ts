/**
 * Reads the result streams of every destination this sender holds, in one blocking XREAD on a
 * connection of its own, and moves each batch into the reorder buffers with one fenced
 * `buffer` script call before handing the results to the lanes.
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

type Batches = Parameters<typeof bufferResults>[2];

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
    while (!this.#stopping.signal.aborted) {
      const plan = this.#currentPlan();
      if (plan.ordered.length === 0) {
        await sleep(BLOCK_MS, this.#stopping.signal);
        continue;
      }
      try {
        const cursors = plan.ordered.map((lane) => lane.cursor);
        const read = await Promise.race([readResults(blocking, plan.streams, cursors, batchSize, BLOCK_MS), stopped]);
        if (read === undefined) return;
        if (read.size === 0) continue;
        // Lanes opened or closed while we read: look each destination up again.
        const current = this.#options.lanesVersion() === plan.version ? plan.lanes : this.#options.lanes();
        const batches = new Map<
          string,
          { leaseValue: string; entries: ResultEntry[]; malformed: string[]; lastId: string; lane: DestinationLane }
        >();
        for (const [destination, batch] of read) {
          const lane = plan.lanes.get(destination);
          // A lane replaced while we read: leave its entries for the new one.
          if (!lane || current.get(destination) !== lane) continue;
          batches.set(destination, { ...batch, leaseValue: lane.leaseValue, lane });
        }
        if (batches.size === 0) continue;
        const outcome = await this.#bufferConfirmed(batches);
        for (const [destination, batch] of batches) {
          if (outcome.get(destination) === -1) {
            this.#options.onFenced(destination);
            continue;
          }
          if (batch.malformed.length > 0)
            logger.warn({ destination, entryIds: batch.malformed }, 'dropped malformed result entries');
          batch.lane.cursor = batch.lastId;
          batch.lane.offer(batch.entries);
        }
      } catch (err) {
        if (this.#stopping.signal.aborted) return;
        logger.warn({ err }, 'reading results failed; retrying');
        await sleep(500, this.#stopping.signal);
      }
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
