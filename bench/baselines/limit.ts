/**
 * The in-memory limit: one process, no Redis, no transform. It answers each message at once
 * (the same protocol as ingest) and forwards it to its destination through reseq's own delivery
 * adapters (`@reseq/delivery`), in order per destination and awaiting the sink's answer as
 * reseq's sender does: one request at a time over HTTP, a window of lines over TCP. What it
 * reaches is what the client, the sinks and the delivery code allow on this machine.
 */
import type { ReseqConfig } from '@reseq/config';
import { createDelivery, type Delivery, type DeliveryOutcome } from '@reseq/delivery';
import type { FrontMessage } from './front-server.js';

const RETRY_MS = 50;

/** One destination's queue of messages not yet acknowledged, sent in order. */
export class Lane {
  readonly #delivery: Delivery;
  readonly #window: number;
  /** Not yet acknowledged, in sequence order; `#head` is the first. */
  #queue: FrontMessage[] = [];
  #head = 0;
  /** How many from the head are on the wire. */
  #inFlight = 0;
  #retrying = false;
  #idle: (() => void) | undefined;

  constructor(delivery: Delivery) {
    this.#delivery = delivery;
    this.#window = delivery.window ?? 1;
  }

  push(message: FrontMessage): void {
    this.#queue.push(message);
    this.#pump();
  }

  /** Resolves once everything pushed was acknowledged. */
  drained(): Promise<void> {
    if (this.#head >= this.#queue.length) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  close(): Promise<void> {
    return this.#delivery.close();
  }

  #pump(): void {
    if (this.#retrying) return;
    while (this.#inFlight < this.#window && this.#head + this.#inFlight < this.#queue.length) {
      const message = this.#queue[this.#head + this.#inFlight]!;
      this.#inFlight++;
      void this.#delivery
        .send({
          destination: message.destination,
          sequence: message.sequence,
          messageId: message.id,
          payload: JSON.stringify(message.payload),
        })
        .then((outcome) => this.#settle(message, outcome));
    }
  }

  #settle(message: FrontMessage, outcome: DeliveryOutcome): void {
    if (outcome.ok) {
      // Answers come in send order; one for a message already resent after a failure is ignored.
      if (this.#queue[this.#head] !== message) return;
      this.#head++;
      this.#inFlight = Math.max(0, this.#inFlight - 1);
      if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (this.#head >= this.#queue.length) this.#idle?.();
      this.#pump();
      return;
    }
    // A failure fails everything after it too: start again from the first unacknowledged one.
    if (this.#retrying) return;
    this.#retrying = true;
    console.error(JSON.stringify({ msg: 'limit: delivery failed; retrying', error: outcome.error }));
    setTimeout(() => {
      this.#retrying = false;
      this.#inFlight = 0;
      this.#pump();
    }, RETRY_MS);
  }
}

/** The lanes of every destination in the config. */
export function createLanes(config: ReseqConfig): Map<string, Lane> {
  return new Map(
    Object.entries(config.destinations).map(([name, destination]) => [name, new Lane(createDelivery(destination))]),
  );
}
