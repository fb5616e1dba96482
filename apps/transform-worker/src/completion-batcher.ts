/**
 * Collects the outcomes that settle in the same event-loop turn and records them with one
 * `complete` script call. A failed write (Redis restarting) is retried until it succeeds or
 * the worker stops; the entries stay pending meanwhile, so nothing is lost either way.
 */
import { sleep, type Logger } from '@reseq/runtime';
import type { Outcome } from '@reseq/store';

/** Records a batch; resolves with how many were duplicates. */
export type CompleteWriter = (outcomes: Outcome[]) => Promise<{ written: number; duplicates: number }>;

interface Pending {
  outcome: Outcome;
  done: () => void;
}

/** Batches outcomes into `complete` script calls. */
export class CompletionBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;

  constructor(
    private readonly write: CompleteWriter,
    private readonly maxBatch: number,
    private readonly logger: Logger,
  ) {}

  /** Queues an outcome; resolves once it is recorded (or the batcher was stopped). */
  submit(outcome: Outcome): Promise<void> {
    return new Promise((done) => {
      this.#queue.push({ outcome, done });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Waits for queued and running writes. */
  async drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      if (this.#queue.length > 0) this.#flush();
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  /** Gives up on writes that keep failing (their entries stay pending for a peer). */
  stop(): void {
    this.#stopped = true;
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.maxBatch);
      const running = this.#writeWithRetry(batch).finally(() => {
        this.#inFlight.delete(running);
        for (const p of batch) p.done();
      });
      this.#inFlight.add(running);
    }
  }

  async #writeWithRetry(batch: Pending[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { duplicates } = await this.write(batch.map((p) => p.outcome));
        if (duplicates > 0) this.logger.info({ duplicates }, 'outcomes already recorded by a peer were dropped');
        return;
      } catch (err) {
        if (this.#stopped) return;
        this.logger.warn({ err, attempt, size: batch.length }, 'recording outcomes failed; retrying');
        await sleep(Math.min(2000, 100 * attempt));
      }
    }
  }
}
