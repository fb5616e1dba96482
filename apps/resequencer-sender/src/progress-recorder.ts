/**
 * Collects the progress steps that lanes record in the same event-loop turn and sends them as
 * one fenced `advance` script call, so many destinations cost one round trip. Where writes are
 * confirmed on replicas (RESEQ_WAIT_REPLICAS), a step resolves only once confirmed.
 */
import { MicroBatcher, sleep, type Logger } from '@reseq/runtime';
import { ReplicasUnavailableError, type AdvanceOutcome, type AdvanceStep } from '@reseq/store';

/** Pause before recording steps again that replicas did not confirm, in ms. */
const UNCONFIRMED_RETRY_MS = 200;

/** Records a batch of steps; resolves with one outcome per step. */
export type AdvanceWriter = (steps: AdvanceStep[]) => Promise<AdvanceOutcome[]>;

/** Batches delivery progress into `advance` script calls. */
export class ProgressRecorder {
  readonly #batcher: MicroBatcher<AdvanceStep, AdvanceOutcome>;

  constructor(
    write: AdvanceWriter,
    private readonly logger?: Logger,
  ) {
    this.#batcher = new MicroBatcher(async (steps: AdvanceStep[]) => {
      const outcomes = await write(steps);
      return steps.map((_, i) => outcomes[i] ?? 'out-of-turn');
    });
  }

  /**
   * Records one step; resolves with what the script answered. A step that replicas did not
   * confirm is recorded again (the script is idempotent) until they do, or until `signal`
   * aborts: then it rejects with {@link ReplicasUnavailableError}, and nothing may be sent after it.
   */
  async record(step: AdvanceStep, signal?: AbortSignal): Promise<AdvanceOutcome> {
    for (;;) {
      try {
        return await this.#batcher.submit(step);
      } catch (err) {
        if (!(err instanceof ReplicasUnavailableError) || signal?.aborted) throw err;
        this.logger?.warn(
          { err, destination: step.destination },
          'progress not confirmed by enough replicas; recording again',
        );
        await sleep(UNCONFIRMED_RETRY_MS, signal);
        if (signal?.aborted) throw err;
      }
    }
  }
}
