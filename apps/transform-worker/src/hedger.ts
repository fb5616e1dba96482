/**
 * Hedged dispatch for one worker (`worker.hedgeAfterMs`; off by default, and then never built).
 * When one of the worker's transform attempts runs past hedgeAfterMs, it asks once for a hedge
 * (a `ZADD` to `{<prefix>}:hedge`). Every poll interval, the worker takes other workers' requests
 * while it has free slots, runs each as a hedge copy (one attempt, the same attempt number), and
 * learns which entries it watches another copy finished, so that the slower copy stops.
 *
 * Why this shape: the owner keeps the input entry pending in the consumer group, and alone
 * touches, retries, backs off and dead-letters it; so a crash of either copy leaves the entry to
 * the usual takeover, and a hedge never adds an attempt, skips a backoff or writes a dead letter.
 * Both copies record through the `complete` script, which keeps only the first outcome of an entry
 * (the second finds it acknowledged and writes nothing): the copies need no other coordination.
 */
import { sleep, type Logger } from '@reseq/runtime';
import {
  completeBatch,
  pollHedges,
  requestHedge,
  type InputEntry,
  type KeySchema,
  type Outcome,
  type ReseqRedis,
  type TakenHedge,
} from '@reseq/store';
import { runHedgeAttempt, type RunTransformOptions } from './run-transform.js';
import { startRunning, type Running } from './running.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** What a {@link Hedger} needs from its worker. */
export interface HedgerDeps {
  redis: ReseqRedis;
  keys: KeySchema;
  consumer: string;
  /** `worker.hedgeAfterMs`. */
  afterMs: number;
  /** Most requests taken per poll (`worker.batchSize`). */
  maxTake: number;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Aborted when the worker starts shutting down: the poll ends, nothing new starts. */
  draining: AbortSignal;
  /** The worker's transforms in flight, by entry id; hedge copies are added here too. */
  running: Map<string, Running>;
  /** How many more transforms the worker may start now. */
  freeSlots: () => number;
  /** The options of a run (signals, transform, settings) for an entry in flight. */
  runOptions: (running: Running) => RunTransformOptions;
  /** Starts a full run of an entry taken over here while its hedge copy ran, after the copy failed. */
  dispatch: (entry: InputEntry, deliveries: number) => void;
  /** Keeps an entry pending here for the hand-back at shutdown. */
  interrupted: (entryId: string) => void;
  /** A transform ended: the worker updates its gauge and wakes what waits for a slot. */
  ended: () => void;
}

/** The hedging side of one worker. */
export class Hedger {
  readonly #deps: HedgerDeps;
  readonly #log: Logger;
  /** How often the worker looks at the requests: a quarter of hedgeAfterMs, within 20-250 ms. */
  readonly #pollMs: number;
  #stopped = false;

  constructor(deps: HedgerDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
    this.#pollMs = Math.min(250, Math.max(20, Math.floor(deps.afterMs / 4)));
  }

  /** `worker.hedgeAfterMs`. */
  get afterMs(): number {
    return this.#deps.afterMs;
  }

  /** The `hedge` option of an entry's full run: asks for one hedge when an attempt runs long. */
  watch(running: Running): NonNullable<RunTransformOptions['hedge']> {
    return {
      afterMs: this.#deps.afterMs,
      onSlow: (attempt) => {
        // At most one hedge per run: a later slow attempt of the same entry asks for none.
        if (running.watched || this.#deps.draining.aborted) return;
        running.watched = true;
        void this.#request(running.entry, attempt);
      },
    };
  }

  /** Looks at the requests every poll interval until the worker starts shutting down. */
  async run(): Promise<void> {
    const { redis, keys, consumer, maxTake, draining, running } = this.#deps;
    while (!draining.aborted) {
      await sleep(this.#pollMs, draining);
      if (draining.aborted) return;
      const room = Math.min(maxTake, Math.max(0, this.#deps.freeSlots()));
      const watched = [...running.values()].filter((r) => r.watched).map((r) => r.entry.entryId);
      // Busy and nothing to watch: no round trip (stale requests are cleaned by a later look).
      if (room === 0 && watched.length === 0) continue;
      try {
        const { taken, gone } = await pollHedges(redis, keys, consumer, room, watched);
        // Another copy finished these: stop this worker's copy, which records nothing.
        for (const id of gone) running.get(id)?.cancel.abort();
        for (const hedge of taken) this.#startCopy(hedge);
      } catch (err) {
        if (draining.aborted) return;
        this.#log.warn({ err }, 'looking at hedge requests failed; retrying');
      }
    }
  }

  /** Gives up on recording hedge outcomes that keep failing (their owners still hold the entries). */
  stop(): void {
    this.#stopped = true;
  }

  /** Asks another worker to run attempt `attempt` of `entry` as well. Never throws. */
  async #request(entry: InputEntry, attempt: number): Promise<void> {
    const { redis, keys, consumer, metrics } = this.#deps;
    try {
      await requestHedge(redis, keys, entry.entryId, attempt, consumer);
      metrics.hedgesRequested.inc();
      this.#log.info(
        { entryId: entry.entryId, destination: entry.destination, sequence: entry.sequence, attempt },
        'transform running long; asked for a hedge on another worker',
      );
    } catch (err) {
      // Only the hedge is lost: this copy runs on as if hedging were off.
      this.#log.warn({ err, entryId: entry.entryId }, 'could not ask for a hedge');
    }
  }

  /**
   * Runs a request taken from another worker: one attempt, with the requester's attempt number.
   * Only a value or `null` is recorded, and only if it comes first; a failure is left to the
   * requester. A request for an entry this worker already runs is dropped.
   */
  #startCopy({ entry, attempt, requester }: TakenHedge): void {
    const { running, metrics, draining } = this.#deps;
    if (running.has(entry.entryId) || draining.aborted) return;
    const copy = startRunning(entry, false);
    running.set(entry.entryId, copy);
    metrics.hedgesStarted.inc();
    const where = { entryId: entry.entryId, destination: entry.destination, sequence: entry.sequence };
    this.#log.info({ ...where, requester, attempt }, 'running a hedge copy of a slow transform of another worker');
    void runHedgeAttempt(entry, attempt, this.#deps.runOptions(copy))
      .then(async (settled) => {
        if (settled) {
          const won = await this.#complete({ entry, ...settled });
          if (won === true) {
            metrics.hedgesWon.inc();
            metrics.transforms.inc({ outcome: settled.kind });
            this.#log.info(where, 'hedge won: its result was recorded before the first copy finished');
          } else if (won === false) {
            this.#log.info(where, 'hedge lost: the first copy finished before it');
          }
          running.delete(entry.entryId);
          return;
        }
        running.delete(entry.entryId);
        // Taken over here meanwhile (its holder stopped) and finished nowhere: run it in full.
        if (copy.owned && !copy.cancel.signal.aborted) {
          if (draining.aborted) {
            running.set(entry.entryId, copy);
            this.#deps.interrupted(entry.entryId);
          } else {
            this.#deps.dispatch(entry, copy.deliveries ?? 1);
          }
        }
      })
      .catch((err: unknown) => {
        this.#log.error({ err, ...where }, 'unexpected error in a hedge copy; the worker that holds the entry goes on');
        running.delete(entry.entryId);
      })
      .finally(() => this.#deps.ended());
  }

  /**
   * Records a hedge copy's outcome in a `complete` call of its own, retried until it succeeds or
   * {@link stop}. Resolves true when it was recorded (the hedge won), false when the entry was
   * already completed (the other copy was first; nothing written), undefined when given up.
   */
  async #complete(outcome: Outcome): Promise<boolean | undefined> {
    const { redis, keys } = this.#deps;
    for (let attempt = 1; !this.#stopped; attempt++) {
      try {
        const { written } = await completeBatch(redis, keys, [outcome]);
        return written === 1;
      } catch (err) {
        if (this.#stopped) break;
        this.#log.warn({ err, attempt, entryId: outcome.entry.entryId }, 'recording a hedge outcome failed; retrying');
        await sleep(Math.min(2000, 100 * attempt));
      }
    }
    return undefined;
  }
}
