/**
 * Window delivery for one destination lane (a destination whose delivery has a window: TCP):
 * consecutive results that need no decision in Redis (values, drops) go out ahead of their turn,
 * up to `delivery.window` in flight; they are settled and recorded strictly in order as the
 * destination acknowledges them, a run of acknowledged ones as one `advance` step. The lane
 * handles a dead letter, a missing result and a rejection its one-at-a-time way
 * (destination-lane.ts).
 */
import type { DeliveryOutcome } from '@reseq/delivery';
import { backoffDelay, faultPoint, sleep } from '@reseq/runtime';
import type { Result } from '@reseq/store';
import { LEASE_WAIT_MS, type BatchStepDeps } from './batch-step.js';

/** What a window step needs from its lane: a batch step's needs, and two more. */
export interface WindowStepDeps extends BatchStepDeps {
  /** Whether an operator paused the destination (read from Redis now and then). */
  paused: () => Promise<boolean>;
  /** Resolves when the lane is offered new results (or stops). */
  woken: () => Promise<void>;
}

/** A result of a delivery window: sent (or dropped) ahead of its turn, settled in its turn. */
interface InFlight {
  result: Result;
  /** Set once the send is answered (at once for a drop). */
  outcome: DeliveryOutcome | undefined;
  /** Resolves once `outcome` is set. */
  done: Promise<void>;
}

/**
 * Delivers through the window until nothing more can go ahead. After a failed send (the adapter
 * then fails every send behind it), it waits for the whole window, backs off and starts again
 * from the first unrecorded sequence.
 * @returns `fenced` when the lane must end, `rejected` when the destination refused the current
 * sequence for good, else `done`.
 */
export async function deliverWindow(deps: WindowStepDeps): Promise<'done' | 'rejected' | 'fenced'> {
  const { destination, buffer, metrics, stopping, lost, logger } = deps;
  const size = deps.delivery.window ?? 1;
  const laneLabels = { destination };
  const deliveredLabels = { destination, outcome: 'delivered' } as const;
  let window: InFlight[] = [];
  let failures = 0;
  for (;;) {
    // Nothing new goes out once stopping, behind a failed send, or on a lease that may have
    // run out (the lease manager renews it or stops the lane).
    if (!stopping.aborted && !window.some((e) => e.outcome?.ok === false) && !(await deps.paused())) {
      let next = (window.at(-1)?.result.sequence ?? buffer.delivered) + 1;
      for (let result = buffer.at(next); window.length < size && result; result = buffer.at(++next)) {
        if (result.kind === 'dead' || (result.kind === 'value' && !deps.leaseValid())) break;
        window.push(startSend(deps, result));
      }
    }
    const head = window[0];
    if (!head) {
      if (stopping.aborted) return 'done';
      if (buffer.peek()?.kind !== 'value' || deps.leaseValid()) return 'done';
      await sleep(LEASE_WAIT_MS, stopping);
      continue;
    }
    if (!head.outcome) {
      // The head's answer, or new results to fill the window with, whichever comes first.
      await Promise.race([head.done, deps.woken()]);
      continue;
    }
    let acked = 0;
    while (acked < window.length && window[acked]!.outcome?.ok === true) acked++;
    if (acked === 0) {
      const outcome = head.outcome as Extract<DeliveryOutcome, { ok: false }>;
      // Nothing of this window may still be on the wire when the next one starts.
      await Promise.all(window.map((e) => e.done));
      window = [];
      if (lost.aborted) return 'done';
      if (!outcome.retryable) return 'rejected';
      failures++;
      metrics.deliveries.inc({ destination, outcome: 'retried' });
      const delay = Math.max(outcome.retryAfterMs ?? 0, backoffDelay(failures, deps.retry));
      if (failures === 1 || failures % 10 === 0) {
        logger.warn(
          { sequence: head.result.sequence, attempt: failures, error: outcome.error, retryInMs: delay },
          'delivery failed; retrying from the first unacknowledged sequence',
        );
      }
      await sleep(delay, stopping);
      continue;
    }
    if (lost.aborted) return 'done';
    failures = 0;
    // Crash tests: the destination has them, the position in Redis does not say so yet.
    faultPoint('sender-after-2xx');
    const settled = window.splice(0, acked);
    const from = settled[0]!.result.sequence;
    const to = settled.at(-1)!.result.sequence;
    const recorded = await deps.record(from, to);
    faultPoint('sender-after-record');
    if (recorded === 'fenced') {
      logger.warn({ from, to }, 'lease lost while recording progress; stopping the lane');
      deps.onFenced();
      return 'fenced';
    }
    if (recorded === 'out-of-turn') {
      logger.warn({ from, to }, 'delivered position moved elsewhere; reloading');
      await deps.reload();
      return 'done';
    }
    // One count per step, one label set per lane: a metric update hashes its labels each time.
    let values = 0;
    const now = Date.now();
    for (const entry of settled) {
      buffer.advance();
      if (entry.result.kind !== 'value') continue;
      values++;
      if (entry.result.acceptedAt > 0) metrics.endToEnd.observe(laneLabels, (now - entry.result.acceptedAt) / 1000);
    }
    if (values > 0) metrics.deliveries.inc(deliveredLabels, values);
    metrics.delivered.set({ destination }, to);
    metrics.buffered.set({ destination }, buffer.size);
  }
}

/** Sends one result of a window (a drop needs no send). */
function startSend(deps: WindowStepDeps, result: Result): InFlight {
  if (result.kind !== 'value') return { result, outcome: { ok: true }, done: Promise.resolve() };
  const entry: InFlight = { result, outcome: undefined, done: Promise.resolve() };
  // Pause tests: the lease looked valid; the line is not written yet.
  faultPoint('sender-before-send');
  const request = {
    destination: deps.destination,
    sequence: result.sequence,
    messageId: result.id,
    payload: result.body,
  };
  entry.done = deps.delivery.send(request, deps.lost, deps.leaseValid).then((outcome) => {
    entry.outcome = outcome;
  });
  return entry;
}
