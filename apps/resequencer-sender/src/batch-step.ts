/**
 * Batch delivery for one destination lane (an HTTP destination with `batch.maxMessages` above
 * 1): the consecutive results ready at the head of the reorder buffer go out in one request, as
 * a JSON array, and are recorded as one `advance` step once the destination answered 2xx. Nothing
 * waits to fill a batch: it takes what is ready. The lane sends a lone message, and whatever a
 * batch cannot carry, its one-at-a-time way (destination-lane.ts).
 */
import type { Delivery, DeliveryRequest } from '@reseq/delivery';
import type { ReorderBuffer } from '@reseq/resequencer';
import { backoffDelay, faultPoint, sleep, type BackoffOptions, type Logger } from '@reseq/runtime';
import type { AdvanceOutcome, Result } from '@reseq/store';
import type { SenderMetrics } from './sender-metrics.js';

/**
 * How long a delivery step (this one, single-step.ts, window-step.ts, replay-runner.ts) waits
 * before looking again at a lease that is not safely valid, in ms.
 */
export const LEASE_WAIT_MS = 100;

/** A batch: the values it sends, and the sequences it settles. */
export interface Batch {
  values: Result[];
  /** The first sequence it settles: the buffer's next one. */
  from: number;
  /** The last sequence it settles: its last value's. */
  to: number;
}

/**
 * The batch at the head of `buffer`: consecutive ready results from the next sequence on, up to
 * `max` values. A dropped result (`null` from the transform) inside it is covered without being
 * sent, as a single delivery would pass it; a dead letter or a missing sequence ends the batch,
 * and so does its last value (drops after it are left to the next step). Undefined where it would
 * carry fewer than two values: the one-at-a-time path does as well then.
 */
export function collectBatch(buffer: ReorderBuffer<Result>, max: number): Batch | undefined {
  const values: Result[] = [];
  const from = buffer.next;
  let to = buffer.delivered;
  for (let sequence = from; values.length < max; sequence++) {
    const result = buffer.at(sequence);
    if (!result || result.kind === 'dead') break;
    if (result.kind === 'value') {
      values.push(result);
      to = sequence;
    }
  }
  return values.length >= 2 ? { values, from, to } : undefined;
}

/** What a batch step needs from its lane. */
export interface BatchStepDeps {
  destination: string;
  delivery: Delivery;
  /** The destination's backoff between attempts. */
  retry: BackoffOptions;
  buffer: ReorderBuffer<Result>;
  leaseValid: () => boolean;
  metrics: SenderMetrics;
  logger: Logger;
  /** Aborted when the lane stops: no new attempt starts. */
  stopping: AbortSignal;
  /** Aborted when the lease is lost: a request in flight is aborted, nothing is recorded. */
  lost: AbortSignal;
  /** Records `from..to` as delivered, fenced by the lease. */
  record: (from: number, to: number) => Promise<AdvanceOutcome>;
  onFenced: () => void;
  /** Reloads the lane's state from Redis (the position moved elsewhere). */
  reload: () => Promise<void>;
}

/**
 * One batch step. `single` where no batch is ready or the destination refused the batch for good
 * (the lane then sends its first message alone, which dead-letters that one if it is refused
 * too); `fenced` when the lease was lost while recording; else `done` (recorded, or stopping).
 * A retryable failure sends the same batch, same range, again after the destination's backoff.
 */
export async function deliverBatch(deps: BatchStepDeps): Promise<'done' | 'single' | 'fenced'> {
  const { destination, delivery, metrics, stopping, lost } = deps;
  const batch = delivery.sendBatch && collectBatch(deps.buffer, delivery.maxBatch ?? 1);
  if (!batch) return 'single';
  const { values, from, to } = batch;
  const requests: DeliveryRequest[] = values.map((r) => ({
    destination,
    sequence: r.sequence,
    messageId: r.id,
    payload: r.body,
  }));
  for (let attempt = 1; ; attempt++) {
    if (stopping.aborted) return 'done';
    if (!deps.leaseValid()) {
      // Never start a send on a lease that may have run out; the lease manager renews it or stops the lane.
      await sleep(LEASE_WAIT_MS, stopping);
      attempt--;
      continue;
    }
    // Pause tests: the lease looked valid; the request is not written yet.
    faultPoint('sender-before-send');
    const outcome = await delivery.sendBatch!(requests, lost, deps.leaseValid);
    if (outcome.ok) break;
    metrics.deliveries.inc({ destination, outcome: 'retried' });
    if (!outcome.retryable) {
      deps.logger.warn(
        { from, to, messages: values.length, error: outcome.error },
        'destination refused a batch; sending its first message alone',
      );
      return 'single';
    }
    const delay = Math.max(outcome.retryAfterMs ?? 0, backoffDelay(attempt, deps.retry));
    if (attempt === 1 || attempt % 10 === 0) {
      deps.logger.warn(
        { from, to, messages: values.length, attempt, error: outcome.error, retryInMs: delay },
        'batch delivery failed; retrying the same batch',
      );
    }
    await sleep(delay, stopping);
  }
  if (lost.aborted) return 'done';
  // Crash tests: the destination has them, the position in Redis does not say so yet.
  faultPoint('sender-after-2xx');
  const recorded = await deps.record(from, to);
  faultPoint('sender-after-record');
  if (recorded === 'fenced') {
    deps.logger.warn({ from, to }, 'lease lost while recording progress; stopping the lane');
    deps.onFenced();
    return 'fenced';
  }
  if (recorded === 'out-of-turn') {
    deps.logger.warn({ from, to }, 'delivered position moved elsewhere; reloading');
    await deps.reload();
    return 'done';
  }
  for (let sequence = from; sequence <= to; sequence++) deps.buffer.advance();
  for (const value of values) {
    metrics.deliveries.inc({ destination, outcome: 'delivered' });
    if (value.acceptedAt > 0) metrics.endToEnd.observe({ destination }, (Date.now() - value.acceptedAt) / 1000);
  }
  metrics.batchMessages.observe({ destination }, values.length);
  metrics.delivered.set({ destination }, to);
  metrics.buffered.set({ destination }, deps.buffer.size);
  return 'done';
}
