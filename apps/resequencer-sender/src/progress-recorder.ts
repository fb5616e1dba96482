/**
 * Collects the progress steps that lanes record in the same event-loop turn and sends them as
 * one fenced `advance` script call, so many destinations cost one round trip. Where writes are
 * confirmed on replicas (RESEQ_WAIT_REPLICAS), a step resolves only once confirmed.
 */
import type { Logger } from '@reseq/runtime';
import { ReplicasUnavailableError, type AdvanceOutcome, type AdvanceStep } from '@reseq/store';

/** Pause before recording steps again that replicas did not confirm, in ms. */
const UNCONFIRMED_RETRY_MS = 200;

interface Pending {
  step: AdvanceStep;
  resolve: (outcome: AdvanceOutcome) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
}

/** Records a batch of steps; resolves with one outcome per step. */
export type AdvanceWriter = (steps: AdvanceStep[]) => Promise<AdvanceOutcome[]>;

/** Batches delivery progress into `advance` script calls. */
export class ProgressRecorder {
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(
    private readonly write: AdvanceWriter,
    private readonly logger?: Logger,
  ) {}

  /**
   * Records one step; resolves with what the script answered. A step that replicas did not
   * confirm is recorded again (the script is idempotent) until they do, or until `signal`
   * aborts: then it rejects with {@link ReplicasUnavailableError}, and nothing may be sent after it.
   */
  record(step: AdvanceStep, signal?: AbortSignal): Promise<AdvanceOutcome> {
    return new Promise((resolve, reject) => this.#enqueue({ step, resolve, reject, signal }));
  }

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    this.write(batch.map((p) => p.step)).then(
      (outcomes) => batch.forEach((p, i) => p.resolve(outcomes[i] ?? 'out-of-turn')),
      (err: unknown) => {
        if (!(err instanceof ReplicasUnavailableError)) {
          batch.forEach((p) => p.reject(err));
          return;
        }
        this.logger?.warn({ err, steps: batch.length }, 'progress not confirmed by enough replicas; recording again');
        setTimeout(() => {
          for (const p of batch) {
            if (p.signal?.aborted) p.reject(err);
            else this.#enqueue(p);
          }
        }, UNCONFIRMED_RETRY_MS);
      },
    );
  }
}
