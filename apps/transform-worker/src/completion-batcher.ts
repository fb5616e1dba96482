/**
 * Collects the outcomes that settle in the same event-loop turn and records them with one
 * `complete` script call. A failed write (Redis restarting) is retried until it succeeds or
 * the worker stops; the entries stay pending meanwhile, so nothing is lost either way.
 */
import { MicroBatcher, sleep, type Logger } from '@reseq/runtime';
import type { Outcome } from '@reseq/store';

/** Records a batch; resolves with how many were duplicates. */
export type CompleteWriter = (outcomes: Outcome[]) => Promise<{ written: number; duplicates: number }>;

/** Batches outcomes into `complete` script calls. */
export class CompletionBatcher {
  readonly #batcher: MicroBatcher<Outcome, void>;
  #stopped = false;

  constructor(write: CompleteWriter, maxBatch: number, logger: Logger) {
    this.#batcher = new MicroBatcher(async (outcomes: Outcome[]) => {
      for (let attempt = 1; !this.#stopped; attempt++) {
        try {
          const { duplicates } = await write(outcomes);
          if (duplicates > 0) logger.info({ duplicates }, 'outcomes already recorded by a peer were dropped');
          break;
        } catch (err) {
          if (this.#stopped) break;
          logger.warn({ err, attempt, size: outcomes.length }, 'recording outcomes failed; retrying');
          await sleep(Math.min(2000, 100 * attempt));
        }
      }
      return outcomes.map(() => undefined);
    }, maxBatch);
  }

  /** Queues an outcome; resolves once it is recorded (or the batcher was stopped). */
  submit(outcome: Outcome): Promise<void> {
    return this.#batcher.submit(outcome);
  }

  /** Waits for queued and running writes. */
  drain(): Promise<void> {
    return this.#batcher.drain();
  }

  /** Gives up on writes that keep failing (their entries stay pending for a peer). */
  stop(): void {
    this.#stopped = true;
  }
}
