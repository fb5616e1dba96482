/**
 * A run's trace as it happens: what the producer sent and had accepted (per message index `k`),
 * and what the sinks received, in arrival order. The producer and the sinks run in the harness
 * process and share one clock, {@link now}.
 */
import type { TracedMessage } from './trace.js';

/** Wall-clock time in ms with sub-millisecond resolution. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The trace of one run. */
export class Recorder {
  /** By message index. */
  readonly messages: TracedMessage[] = [];
  readonly deliveryK: number[] = [];
  readonly deliveryAt: number[] = [];
  /** Receipts that carried no message index (a body the sink could not read). */
  unreadable = 0;
  /** Receipts at a destination other than the message's own. */
  misrouted = 0;
  /** Messages the system refused for good (final 4xx), by `status code`. */
  readonly rejected = new Map<string, number>();
  /** Called after every acceptance, refusal and first receipt (the closed-loop producer listens). */
  onProgress: (() => void) | undefined;
  #accepted = 0;
  #frozen = false;
  #finallyRejected = 0;
  #firstReceipts = 0;
  readonly #received: boolean[] = [];

  /** The producer sends message `k` (its first attempt). */
  sent(k: number, destination: number, plannedMs: number): void {
    this.messages[k] = { destination, plannedMs, acceptedAt: undefined, sequence: undefined };
  }

  /** The system accepted message `k` as `sequence` of its destination. */
  accepted(k: number, at: number, sequence: number): void {
    const message = this.messages[k];
    if (!message || message.acceptedAt !== undefined) return;
    message.acceptedAt = at;
    message.sequence = sequence;
    this.#accepted++;
    this.onProgress?.();
  }

  /** The system refused a message for good (`reason`: status and code). */
  refused(reason: string): void {
    this.#finallyRejected++;
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.onProgress?.();
  }

  /** A sink received message `k` at destination index `destination` (undefined: not known to the sink). */
  received(k: unknown, destination: number | undefined, at: number): void {
    if (this.#frozen) return;
    if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) {
      this.unreadable++;
      return;
    }
    this.deliveryK.push(k);
    this.deliveryAt.push(at);
    const message = this.messages[k];
    if (message && destination !== undefined && message.destination !== destination) this.misrouted++;
    if (this.#received[k] === true) return;
    this.#received[k] = true;
    this.#firstReceipts++;
    this.onProgress?.();
  }

  /** Ends the trace: receipts from now on (while the system shuts down) are not recorded. */
  freeze(): void {
    this.#frozen = true;
  }

  get sentCount(): number {
    return this.messages.length;
  }

  get acceptedCount(): number {
    return this.#accepted;
  }

  get rejectedCount(): number {
    return this.#finallyRejected;
  }

  /** Distinct messages received. */
  get receivedCount(): number {
    return this.#firstReceipts;
  }

  /** Sent and neither received nor refused: what a closed-loop producer keeps bounded. */
  outstanding(): number {
    return this.messages.length - this.#firstReceipts - this.#finallyRejected;
  }

  /** Every accepted message has been received. */
  allAcceptedReceived(): boolean {
    return this.#firstReceipts >= this.#accepted;
  }
}
