/**
 * Groups the requests that arrive in the same event-loop turn into one Redis script call
 * (up to `maxBatch`), so ingest costs one round trip per batch, not per message. Batches go
 * out on one connection in arrival order and Redis answers them in that order, so the order
 * in which ingest answers 202 for a destination is the order of its sequences.
 */
import type { IngestOutcome, IngestRequest } from '@reseq/store';

interface Pending {
  request: IngestRequest;
  resolve: (outcome: IngestOutcome) => void;
  reject: (err: unknown) => void;
}

/** Writes a batch; resolves with one outcome per request, in order. */
export type BatchWriter = (requests: IngestRequest[]) => Promise<IngestOutcome[]>;

/** The micro-batcher in front of the ingest script. */
export class IngestBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly write: BatchWriter,
    private readonly maxBatch: number,
  ) {}

  /** Queues a message; resolves once it is durable (or was seen before). */
  submit(request: IngestRequest): Promise<IngestOutcome> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Resolves once every submitted message has been written or failed. */
  async drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      if (this.#queue.length > 0) this.#flush();
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.maxBatch);
      const done = this.write(batch.map((p) => p.request)).then(
        (outcomes) => batch.forEach((p, i) => p.resolve(outcomes[i]!)),
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      );
      this.#inFlight.add(done);
      void done.finally(() => this.#inFlight.delete(done));
    }
  }
}
