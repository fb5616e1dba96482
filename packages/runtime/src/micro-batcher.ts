/**
 * Gathers the items submitted in one event-loop turn into one call of `write` (at most
 * `maxBatch` items per call), so a burst costs one Redis round trip instead of one per item.
 * Calls go out in submission order without waiting for each other; on a single connection
 * Redis answers them in that order, so what was submitted first is settled first.
 *
 * `eager` trades that for latency where a caller waits for each item before its next one (a
 * sender lane between two deliveries): one call at a time, an item submitted while none is out
 * goes out at once (after the current task, not at the end of the turn, which under load can
 * be a millisecond away), and the items submitted meanwhile go out together as soon as it
 * settles, so batches grow with the load as before.
 */

/** Writes a batch; resolves with one result per item, in order. */
export type BatchWrite<T, R> = (items: T[]) => Promise<R[]>;

interface Pending<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/** The micro-batcher in front of ingest's, the workers' and the senders' batch scripts. */
export class MicroBatcher<T, R> {
  #queue: Pending<T, R>[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();

  readonly #eager: boolean;

  /**
   * @param write called with each batch; a rejection fails every item of that batch only.
   * @param maxBatch most items per call; default unbounded.
   * @param options.eager one call at a time, the first at once (see the class).
   */
  constructor(
    private readonly write: BatchWrite<T, R>,
    private readonly maxBatch = Number.POSITIVE_INFINITY,
    options: { eager?: boolean } = {},
  ) {
    this.#eager = options.eager === true;
  }

  /** Queues an item; settles with its result once its batch was written. */
  submit(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      // Eager: while a call is out, the item waits for it to settle (see #flush).
      if (!this.#scheduled && !(this.#eager && this.#inFlight.size > 0)) this.#schedule();
    });
  }

  /** Resolves once every submitted item has been written or failed. */
  async drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      if (this.#queue.length > 0) this.#flush();
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  #schedule(): void {
    this.#scheduled = true;
    if (this.#eager) queueMicrotask(() => this.#flush());
    else setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.maxBatch);
      const done = this.write(batch.map((p) => p.item)).then(
        (results) => batch.forEach((p, i) => p.resolve(results[i]!)),
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      );
      this.#inFlight.add(done);
      void done.finally(() => {
        this.#inFlight.delete(done);
        if (this.#eager && this.#queue.length > 0 && this.#inFlight.size === 0 && !this.#scheduled) this.#schedule();
      });
      if (this.#eager) return;
    }
  }
}
