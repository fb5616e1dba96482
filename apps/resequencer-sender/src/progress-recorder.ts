/**
 * Collects the progress steps that lanes record while a call is out (or at the same moment) and
 * sends them as one fenced `advance` script call, so many destinations cost one round trip; a
 * step recorded while no call is out goes at once. Where writes are
 * confirmed on replicas (RESEQ_WAIT_REPLICAS), a step resolves only once confirmed.
 *
 * A lane may also record a step without waiting for its reply ({@link ProgressRecorder.send}):
 * once the step has left this process, the lane starts its next delivery while the reply is on
 * its way, which takes a Redis round trip off every message of a run the lane delivers back to
 * back (guarantees.md, "progress").
 */
import { MicroBatcher, sleep, type Logger } from '@reseq/runtime';
import { ReplicasUnavailableError, type AdvanceOutcome, type AdvanceStep } from '@reseq/store';

/** Pause before recording steps again that replicas did not confirm, in ms. */
const UNCONFIRMED_RETRY_MS = 200;

/** Records a batch of steps; resolves with one outcome per step. */
export type AdvanceWriter = (steps: AdvanceStep[]) => Promise<AdvanceOutcome[]>;

/** A step and, for {@link ProgressRecorder.send}, who waits to learn whether it left the process. */
interface Queued {
  step: AdvanceStep;
  onSent?: (left: boolean) => void;
}

/** A step sent with {@link ProgressRecorder.send}. */
export interface SentStep {
  /**
   * Resolves once the batch holding the step was written: true when it has left this process
   * (a crash can no longer take it back), false when it may not have (then wait for `outcome`).
   */
  left: Promise<boolean>;
  /** What the script answered; rejects where the write failed (then record the step again). */
  outcome: Promise<AdvanceOutcome>;
}

/** Batches delivery progress into `advance` script calls. */
export class ProgressRecorder {
  readonly #batcher: MicroBatcher<Queued, AdvanceOutcome>;

  /**
   * @param write sends the steps (synchronously, before its first `await`) and resolves with
   *   the script's answers.
   * @param writesLeft whether everything `write` just sent has left the process: in the kernel's
   *   socket buffer, needing no replica's confirmation (store's `writesLeftProcess`). Without it
   *   nothing counts as left, and {@link send} is {@link record} under another name.
   */
  constructor(
    write: AdvanceWriter,
    private readonly logger?: Logger,
    writesLeft: () => boolean = () => false,
  ) {
    // Eager: a lane waits for its step before its next delivery, so a step goes out at once
    // rather than at the end of the event-loop turn; steps of lanes that come meanwhile go
    // together once it is answered.
    this.#batcher = new MicroBatcher(
      async (queued: Queued[]) => {
        let writing: Promise<AdvanceOutcome[]> | undefined;
        try {
          writing = write(queued.map((q) => q.step));
        } finally {
          const left = writing !== undefined && writesLeft();
          for (const q of queued) q.onSent?.(left);
        }
        const outcomes = await writing;
        return queued.map((_, i) => outcomes[i] ?? 'out-of-turn');
      },
      undefined,
      { eager: true },
    );
  }

  /**
   * Records one step; resolves with what the script answered. A step that replicas did not
   * confirm is recorded again (the script is idempotent) until they do, or until `signal`
   * aborts: then it rejects with {@link ReplicasUnavailableError}, and nothing may be sent after it.
   */
  async record(step: AdvanceStep, signal?: AbortSignal): Promise<AdvanceOutcome> {
    for (;;) {
      try {
        return await this.#batcher.submit({ step });
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

  /**
   * Sends one step with the next batch, once: `left` tells when it is safe to go on before the
   * reply; `outcome` is the reply. Where `outcome` rejects (unconfirmed by replicas, Redis
   * unreachable), record the same step with {@link record} before anything else.
   */
  send(step: AdvanceStep): SentStep {
    let onSent: (left: boolean) => void = () => {};
    const left = new Promise<boolean>((resolve) => (onSent = resolve));
    const outcome = this.#batcher.submit({ step, onSent });
    // A batch that failed before its write was attempted never called onSent.
    outcome.catch(() => onSent(false));
    return { left, outcome };
  }
}
