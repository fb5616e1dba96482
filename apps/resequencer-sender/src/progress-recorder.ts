/**
 * Collects the progress steps that lanes record in the same event-loop turn and sends them as
 * one fenced `advance` script call, so many destinations cost one round trip.
 */
import type { AdvanceOutcome, AdvanceStep } from '@reseq/store';

interface Pending {
  step: AdvanceStep;
  resolve: (outcome: AdvanceOutcome) => void;
  reject: (err: unknown) => void;
}

/** Records a batch of steps; resolves with one outcome per step. */
export type AdvanceWriter = (steps: AdvanceStep[]) => Promise<AdvanceOutcome[]>;

/** Batches delivery progress into `advance` script calls. */
export class ProgressRecorder {
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(private readonly write: AdvanceWriter) {}

  /** Records one step; resolves with what the script answered. */
  record(step: AdvanceStep): Promise<AdvanceOutcome> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ step, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    this.write(batch.map((p) => p.step)).then(
      (outcomes) => batch.forEach((p, i) => p.resolve(outcomes[i] ?? 'out-of-turn')),
      (err: unknown) => batch.forEach((p) => p.reject(err)),
    );
  }
}
