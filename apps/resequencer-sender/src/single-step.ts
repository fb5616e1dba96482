/**
 * One message to one destination, the lane's plain way (destination-lane.ts): sent until the
 * destination answers 2xx, retrying 5xx, timeouts and lost connections after the destination's
 * backoff (or its Retry-After), never on a lease that may have run out. A refusal (4xx) is final
 * and handed back to the lane, which dead-letters the message. Batch and window delivery are the
 * other two ways (batch-step.ts, window-step.ts).
 */
import { backoffDelay, faultPoint, sleep } from '@reseq/runtime';
import type { Result } from '@reseq/store';
import { LEASE_WAIT_MS, type BatchStepDeps } from './batch-step.js';

/** What the lane's single step needs: the batch step's dependencies but the buffer and recording. */
export type SingleStepDeps = Omit<BatchStepDeps, 'buffer' | 'record' | 'reload'>;

/** How a single send ended: taken (2xx), stopped (the lane is stopping), or refused for good. */
export type SingleSent = 'delivered' | 'stopped' | { refused: string };

/** Sends `result` (a value) until the destination takes or refuses it, or the lane stops. */
export async function sendOne(deps: SingleStepDeps, result: Result): Promise<SingleSent> {
  const { destination, delivery, metrics, stopping, lost } = deps;
  const request = { destination, sequence: result.sequence, messageId: result.id, payload: result.body };
  for (let attempt = 1; ; attempt++) {
    if (stopping.aborted) return 'stopped';
    // Never start a send on a lease that may have run out: a paused sender must not deliver
    // out of turn after a peer took over. Wait for the lease manager to renew it (or to stop
    // this lane when it is lost) without holding up the event loop.
    if (!deps.leaseValid()) {
      await sleep(LEASE_WAIT_MS, stopping);
      attempt--;
      continue;
    }
    // Pause tests: the lease looked valid; the request is not written yet.
    faultPoint('sender-before-send');
    // The lease is checked again just before the request is written (see Delivery.send).
    const outcome = await delivery.send(request, lost, deps.leaseValid);
    if (outcome.ok) {
      // Crash tests: the destination has it, the position in Redis does not say so yet.
      faultPoint('sender-after-2xx');
      metrics.deliveries.inc({ destination, outcome: 'delivered' });
      if (result.acceptedAt > 0) metrics.endToEnd.observe({ destination }, (Date.now() - result.acceptedAt) / 1000);
      return lost.aborted ? 'stopped' : 'delivered';
    }
    if (!outcome.retryable) {
      metrics.deliveries.inc({ destination, outcome: 'rejected' });
      return { refused: `DELIVERY_REJECTED: ${outcome.error}` };
    }
    metrics.deliveries.inc({ destination, outcome: 'retried' });
    const delay = Math.max(outcome.retryAfterMs ?? 0, backoffDelay(attempt, deps.retry));
    if (attempt === 1 || attempt % 10 === 0) {
      deps.logger.warn(
        { sequence: result.sequence, attempt, error: outcome.error, retryInMs: delay },
        'delivery failed; retrying',
      );
    }
    await sleep(delay, stopping);
  }
}
