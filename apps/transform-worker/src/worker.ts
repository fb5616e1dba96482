/**
 * The transform worker's engine. It keeps up to WORKER_CONCURRENCY transforms in flight: it
 * first re-reads its own pending entries (ID 0, after a restart), then reads new ones (`>`) in
 * batches sized to its free slots, and periodically takes over entries that crashed peers left
 * pending (XAUTOCLAIM). It keeps its own long-running entries fresh (XCLAIM JUSTID) so live
 * work is never taken over, and hands unfinished entries back on shutdown. With hedged dispatch
 * (hedger.ts) it also runs one-attempt copies of other workers' slow entries.
 */
import { setMaxListeners } from 'node:events';
import type { ReseqConfig } from '@reseq/config';
import { faultPoint, sleep, untilAborted, type Logger } from '@reseq/runtime';
import {
  claimIdle,
  completeBatch,
  deliveryCounts,
  discardEntries,
  ensureWorkerGroup,
  forgetIdleConsumers,
  handBackEntries,
  readInput,
  touchEntries,
  trimInput,
  type InputEntry,
  type KeySchema,
  type ReadResult,
  type ReseqRedis,
} from '@reseq/store';
import type { Redis } from 'ioredis';
import { CompletionBatcher } from './completion-batcher.js';
import { Hedger } from './hedger.js';
import type { TransformFn } from './load-transform.js';
import { runTransform, type RunTransformOptions, type Settled } from './run-transform.js';
import { startRunning, type Running } from './running.js';
import { EngineSlots, ReadAhead, SlotPool, slotsTaken } from './slot-pool.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** What the worker needs. */
export interface WorkerDeps {
  config: ReseqConfig;
  logger: Logger;
  transform: TransformFn;
  keys: KeySchema;
  /** Connection for every non-blocking command. */
  redis: ReseqRedis;
  /** Connection reserved for XREADGROUP BLOCK. */
  blocking: Redis;
  consumer: string;
  metrics: WorkerMetrics;
  /**
   * The process's transform slots, shared with the engines of its other shards (RESEQ_SHARDS);
   * default: WORKER_CONCURRENCY of its own.
   */
  slots?: SlotPool;
}

/** An entry read, waiting for a transform slot. */
interface Admitted {
  entry: InputEntry;
  deliveries: number;
}

/** How often a worker compacts the input stream (trimInput), in ms. */
const TRIM_INTERVAL_MS = 60_000;

/**
 * How long a consumer of the group that holds nothing may go without reading before a worker
 * removes it (forgetIdleConsumers, at the same pace as trimInput): a stopped worker's name.
 */
const FORGET_CONSUMERS_AFTER_MS = 3_600_000;

/** Entries delivered this many times without settling are dead-lettered (crash loops). */
const DELIVERIES_PER_ATTEMPT = 2;

/** One transform worker process, or its engine for one shard (the input stream of `keys`). */
export class TransformWorker {
  readonly #deps: WorkerDeps;
  readonly #log: Logger;
  readonly #running = new Map<string, Running>();
  readonly #interrupted = new Set<string>();
  readonly #draining = new AbortController();
  readonly #abort = new AbortController();
  readonly #completer: CompletionBatcher;
  /** Hedged dispatch; undefined while `worker.hedgeAfterMs` is unset (then nothing of it runs). */
  readonly #hedger: Hedger | undefined;
  readonly #slots: EngineSlots<Admitted>;
  #readLoop: Promise<void> | undefined;
  #recoveryLoop: Promise<void> | undefined;
  #hedgeLoop: Promise<void> | undefined;
  /**
   * Of `#running`, the entries whose transform settled and whose outcome is on its way to Redis
   * (the `complete` write): they no longer hold a transform slot (see #slotsInUse).
   */
  #recording = 0;
  /** Whether the read loop reads ahead: while this engine's transforms are fast. */
  readonly #readAhead = new ReadAhead();
  #claimCursor = '0-0';
  #lastRecoveryAt = 0;
  #lastTrimAt = 0;

  constructor(deps: WorkerDeps) {
    this.#deps = deps;
    // Every running transform listens on these two signals.
    setMaxListeners(0, this.#draining.signal, this.#abort.signal);
    this.#log = deps.logger.child({ component: 'worker', consumer: deps.consumer });
    this.#slots = new EngineSlots<Admitted>(
      deps.slots ?? new SlotPool(deps.config.env.WORKER_CONCURRENCY),
      () => this.#slotsInUse(),
      ({ entry, deliveries }) => {
        if (!this.#running.has(entry.entryId)) this.#dispatch(entry, deliveries);
      },
    );
    this.#completer = new CompletionBatcher(
      async (outcomes) => {
        const written = await completeBatch(deps.redis, deps.keys, outcomes);
        // Crash tests: results written and entries acknowledged (one script), nothing else done.
        faultPoint('worker-after-complete');
        return written;
      },
      deps.config.worker.batchSize,
      this.#log,
    );
    const afterMs = deps.config.worker.hedgeAfterMs;
    this.#hedger =
      afterMs === undefined
        ? undefined
        : new Hedger({
            redis: deps.redis,
            keys: deps.keys,
            consumer: deps.consumer,
            afterMs,
            maxTake: deps.config.worker.batchSize,
            metrics: deps.metrics,
            logger: this.#log,
            draining: this.#draining.signal,
            running: this.#running,
            freeSlots: () => this.#freeSlots(),
            runOptions: (running) => this.#runOptions(running),
            dispatch: (entry, deliveries) => this.#dispatch(entry, deliveries),
            interrupted: (entryId) => this.#interrupted.add(entryId),
            ended: () => this.#ended(),
          });
  }

  /** Whether the loops are alive (for /readyz). */
  get alive(): boolean {
    return (
      !this.#draining.signal.aborted &&
      Date.now() - this.#lastRecoveryAt < this.#deps.config.worker.claimIntervalMs * 3 + 5000
    );
  }

  /** Creates the group if needed and starts reading. */
  async start(): Promise<void> {
    await ensureWorkerGroup(this.#deps.redis, this.#deps.keys);
    this.#lastRecoveryAt = Date.now();
    this.#readLoop = this.#read();
    this.#recoveryLoop = this.#recover();
    this.#hedgeLoop = this.#hedger?.run();
    this.#log.info(
      {
        concurrency: this.#deps.config.env.WORKER_CONCURRENCY,
        hedgeAfterMs: this.#hedger?.afterMs,
        input: this.#deps.keys.input,
      },
      'transform worker started',
    );
  }

  /**
   * Stops reading, lets running transforms finish for the grace period, hands the rest back to
   * the group (idle, so a peer takes them at once), and records what settled.
   */
  async stop(): Promise<void> {
    this.#draining.abort();
    // Hedge copies are spares: the workers that hold their entries go on with them.
    for (const r of this.#running.values()) if (!r.owned) r.cancel.abort();
    // Entries read but never started: handed back with the unfinished ones.
    const neverStarted = this.#slots.close().map(({ entry }) => entry.entryId);
    this.#slots.pool.wake();
    // A blocked XREADGROUP holds its connection: close it to end the read loop now.
    this.#deps.blocking.disconnect();
    await Promise.allSettled([this.#readLoop, this.#recoveryLoop, this.#hedgeLoop]);
    const deadline = Date.now() + this.#deps.config.worker.shutdownGraceMs;
    while (this.#running.size > this.#interrupted.size && Date.now() < deadline)
      await this.#waitForSlotChange(deadline);
    this.#abort.abort();
    const unfinished = [
      ...[...this.#running.values()].filter((r) => r.owned).map((r) => r.entry.entryId),
      ...neverStarted,
    ];
    if (unfinished.length > 0) {
      try {
        await handBackEntries(
          this.#deps.redis,
          this.#deps.keys,
          this.#deps.consumer,
          unfinished,
          this.#deps.config.worker.claimIdleMs,
        );
        this.#log.info({ count: unfinished.length }, 'handed unfinished entries back to the group');
      } catch (err) {
        this.#log.warn(
          { err, count: unfinished.length },
          'could not hand entries back; peers take them after the idle timeout',
        );
      }
    }
    this.#completer.stop();
    this.#hedger?.stop();
    await this.#completer.drain();
  }

  async #read(): Promise<void> {
    const { config, keys, consumer, blocking } = this.#deps;
    const batch = config.worker.batchSize;
    // Own pending entries first: what this consumer held when it last stopped or crashed.
    let from = '0';
    while (!this.#draining.signal.aborted) {
      // Fast transforms of the batch just started settle within this turn: let them free their
      // slots before the next read is sized, or every read would be sized by the read ahead alone.
      if (this.#readAhead.fast) await new Promise((resolve) => setImmediate(resolve));
      await this.#waitForReadRoom();
      if (this.#draining.signal.aborted) return;
      const want = Math.min(this.#readRoom(), batch);
      const readStarted = performance.now();
      try {
        // A read queued while the connection reconnects never settles once stop() disconnected
        // it (ioredis keeps it for a reconnect that no longer comes): stop waiting for it then.
        const result = await untilAborted(readInput(blocking, keys, consumer, from, want, 2000), this.#draining.signal);
        if (result === undefined) return;
        if (result.entries.length + result.malformed.length >= want)
          this.#readAhead.read(performance.now() - readStarted);
        if (from !== '>') {
          if (result.lastId === undefined) {
            from = '>';
            continue;
          }
          from = result.lastId;
        }
        // Own pending entries count their deliveries too: a worker that crashes on a message
        // and restarts under the same name must not retry it forever.
        const counts =
          from === '>'
            ? undefined
            : await deliveryCounts(
                this.#deps.redis,
                keys,
                consumer,
                result.entries.map((e) => e.entryId),
              );
        await this.#accept(result, counts);
      } catch (err) {
        if (this.#draining.signal.aborted) return;
        this.#log.warn({ err }, 'reading the input stream failed; retrying');
        await this.#recreateGroupIfGone(err);
        await sleep(500, this.#draining.signal);
      }
    }
  }

  async #recover(): Promise<void> {
    const { config, keys, consumer, redis } = this.#deps;
    while (!this.#draining.signal.aborted) {
      await sleep(config.worker.claimIntervalMs, this.#draining.signal);
      if (this.#draining.signal.aborted) return;
      try {
        await this.#touchRunning();
        // Take over idle entries while there is room, a page at a time.
        while (this.#freeSlots() > 0 && !this.#draining.signal.aborted) {
          const count = Math.min(this.#freeSlots(), config.worker.batchSize);
          const claimed = await claimIdle(redis, keys, consumer, config.worker.claimIdleMs, this.#claimCursor, count);
          this.#claimCursor = claimed.cursor;
          if (claimed.deleted.length > 0) {
            this.#deps.metrics.deletedEntries.inc(claimed.deleted.length);
            this.#log.error(
              { entryIds: claimed.deleted },
              'pending entries were deleted from the input stream before they were transformed; their messages are lost',
            );
            await discardEntries(redis, keys, claimed.deleted);
          }
          const fresh = claimed.entries.filter((e) => !this.#running.has(e.entryId));
          // A hedge copy running here of an entry whose holder stopped: the entry is ours now.
          const adopted = claimed.entries.flatMap((e) => {
            const running = this.#running.get(e.entryId);
            return running && !running.owned ? [running] : [];
          });
          if (fresh.length > 0 || adopted.length > 0 || claimed.malformed.length > 0) {
            this.#deps.metrics.claimed.inc(fresh.length + adopted.length);
            this.#log.info(
              { count: fresh.length + adopted.length },
              'took over entries left idle by a stopped or crashed worker',
            );
            const counts = await deliveryCounts(
              redis,
              keys,
              consumer,
              [...fresh, ...adopted.map((r) => r.entry)].map((e) => e.entryId),
            );
            for (const r of adopted) {
              r.owned = true;
              r.lastTouched = Date.now();
              r.deliveries = counts.get(r.entry.entryId) ?? 1;
            }
            await this.#accept({ entries: fresh, malformed: claimed.malformed }, counts);
          }
          if (this.#claimCursor === '0-0') break;
        }
        if (Date.now() - this.#lastTrimAt >= TRIM_INTERVAL_MS) {
          this.#lastTrimAt = Date.now();
          const trimmed = await trimInput(redis, keys);
          if (trimmed > 0) this.#log.debug({ trimmed }, 'trimmed the input stream below the oldest needed entry');
          const forgotten = await forgetIdleConsumers(redis, keys, consumer, FORGET_CONSUMERS_AFTER_MS);
          if (forgotten.length > 0)
            this.#log.info({ consumers: forgotten }, 'removed the consumers of stopped workers, which held nothing');
        }
        this.#lastRecoveryAt = Date.now();
      } catch (err) {
        if (this.#draining.signal.aborted) return;
        this.#log.warn({ err }, 'recovering idle entries failed; retrying');
        await this.#recreateGroupIfGone(err);
      }
    }
  }

  /**
   * A Redis that restarted without its data (no persistence) has lost the consumer group while
   * ingest's next XADD recreates the stream: create the group again instead of failing forever.
   */
  async #recreateGroupIfGone(err: unknown): Promise<void> {
    if (!(err instanceof Error) || !err.message.includes('NOGROUP')) return;
    try {
      await ensureWorkerGroup(this.#deps.redis, this.#deps.keys);
      this.#log.error('the consumer group was gone (Redis lost its data?); created it again');
    } catch (cause) {
      this.#log.warn({ err: cause }, 'could not create the consumer group again');
    }
  }

  /** Resets the idle time of entries that have been running for a while. */
  async #touchRunning(): Promise<void> {
    const now = Date.now();
    const threshold = this.#deps.config.worker.claimIdleMs / 3;
    // Only entries this worker holds: touching a peer's entry would take it from the peer.
    const stale = [...this.#running.values()].filter((r) => r.owned && now - r.lastTouched >= threshold);
    // Entries waiting for a slot are this consumer's too.
    const waiting = this.#slots.waitingLongerThan(threshold, now).map(({ entry }) => entry.entryId);
    if (stale.length === 0 && waiting.length === 0) return;
    await touchEntries(this.#deps.redis, this.#deps.keys, this.#deps.consumer, [
      ...stale.map((r) => r.entry.entryId),
      ...waiting,
    ]);
    for (const r of stale) r.lastTouched = now;
  }

  async #accept(result: ReadResult, deliveries: Map<string, number> | undefined): Promise<void> {
    if (result.malformed.length > 0) {
      this.#log.warn({ entryIds: result.malformed }, 'dropping input entries that carry no message');
      await discardEntries(this.#deps.redis, this.#deps.keys, result.malformed);
    }
    // Entries held already (a takeover or a re-read of this consumer's own pending ones finds
    // them again) are not started twice; the waiting ones looked up once per call, not per entry.
    const queued = this.#slots.waiting;
    const waiting = queued.length > 0 ? new Set(queued.map((w) => w.entry.entryId)) : undefined;
    for (const entry of result.entries) {
      if (this.#running.has(entry.entryId) || waiting?.has(entry.entryId)) continue;
      this.#slots.admit({ entry, deliveries: deliveries?.get(entry.entryId) ?? 1 });
    }
  }

  #dispatch(entry: InputEntry, deliveries: number): void {
    const { config, metrics } = this.#deps;
    const running = startRunning(entry, true);
    this.#running.set(entry.entryId, running);
    const maxDeliveries = config.transform.maxAttempts * DELIVERIES_PER_ATTEMPT;
    const started = performance.now();
    const settle: Promise<Settled | undefined> =
      deliveries > maxDeliveries
        ? Promise.resolve({
            kind: 'dead',
            attempts: deliveries,
            body: `TRANSFORM_ABANDONED: delivered to workers ${deliveries} times without settling (crashing workers?)`,
          })
        : runTransform(entry, {
            ...this.#runOptions(running),
            hedge: this.#hedger?.watch(running),
          });
    void settle
      .then(async (settled) => {
        if (!settled && running.cancel.signal.aborted) {
          // Its hedge copy completed it: nothing to record.
          this.#log.info(
            { entryId: entry.entryId, destination: entry.destination, sequence: entry.sequence },
            'another copy finished this entry first; stopped this one',
          );
          this.#running.delete(entry.entryId);
          return;
        }
        if (!settled) {
          this.#interrupted.add(entry.entryId);
          return;
        }
        this.#readAhead.settled(performance.now() - started);
        metrics.transforms.inc({ outcome: settled.kind });
        // The transform is done: its slot takes the next entry while the outcome is written.
        this.#recording++;
        this.#ended();
        try {
          await this.#completer.submit({ entry, ...settled });
        } finally {
          this.#recording--;
        }
        this.#running.delete(entry.entryId);
      })
      .catch((err: unknown) => {
        // Unreachable by design (runTransform settles every error); keep the entry pending.
        this.#log.error({ err, entryId: entry.entryId }, 'unexpected error settling an entry; a peer will retry it');
        this.#running.delete(entry.entryId);
      })
      .finally(() => this.#ended());
  }

  /** Transform slots this engine takes (see slotsTaken). */
  #slotsInUse(): number {
    return slotsTaken(this.#running.size, this.#recording, this.#slots.pool.capacity);
  }

  /** A transform ended (or changed hands): a free slot wakes the loops. */
  #ended(): void {
    this.#slots.pool.wake();
  }

  /** What every run of this worker passes to the transform runner. */
  #runOptions(running: Running): RunTransformOptions {
    const { config, metrics } = this.#deps;
    return {
      transform: this.#deps.transform,
      settings: config.transform,
      logger: this.#log,
      draining: this.#draining.signal,
      abort: this.#abort.signal,
      // Only hedged dispatch cancels a run (another copy finished it first).
      cancel: this.#hedger ? running.cancel.signal : undefined,
      onAttempt: (outcome, seconds) => metrics.duration.observe({ outcome }, seconds),
    };
  }

  /** Slots this engine may fill: the process's free slots less what it read that waits for one. */
  #freeSlots(): number {
    return this.#slots.free;
  }

  /** Entries the read loop may read now: the free slots, and more while transforms are fast (ReadAhead). */
  #readRoom(): number {
    return this.#freeSlots() + this.#readAhead.extra(this.#slots.pool.capacity, this.#deps.config.worker.batchSize);
  }

  async #waitForReadRoom(): Promise<void> {
    while (this.#readRoom() <= 0 && !this.#draining.signal.aborted) await this.#slots.pool.changed();
  }

  async #waitForSlotChange(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#slots.pool.changed(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
  }
}
