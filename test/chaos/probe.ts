/**
 * Where messages wait at a moment of a chaos run, read from Redis for the progress lines: the
 * input stream (not yet read by a worker, and read but unsettled), the result streams (not yet
 * taken by a sender) and the reorder buffers. Read-only; "redis down" while Redis is.
 */
import { KeySchema, WORKER_GROUP } from '@reseq/store';
import { Redis } from 'ioredis';

/** Reads the pipeline's backlog from Redis. */
export class PipelineProbe {
  readonly #client: Redis;
  readonly #keys: KeySchema;
  readonly #destinations: readonly string[];

  constructor(url: string, prefix: string, destinations: readonly string[]) {
    this.#client = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: 1_000,
      commandTimeout: 2_000,
      retryStrategy: () => 500,
    });
    this.#client.on('error', () => {
      // Redis is SIGKILLed on purpose; the probe says "redis down" and tries again later.
    });
    this.#keys = new KeySchema(prefix);
    this.#destinations = destinations;
  }

  /** One line: `input unread 12, unsettled 40; results 3; buffered 17`. */
  async describe(): Promise<string> {
    try {
      if (this.#client.status === 'wait') await this.#client.connect();
      const keys = this.#keys;
      const groups = (await this.#client.xinfo('GROUPS', keys.input).catch(() => [])) as unknown[][];
      const group = groups.map(toRecord).find((g) => g.name === WORKER_GROUP);
      const pipeline = this.#client.pipeline();
      for (const d of this.#destinations) pipeline.xlen(keys.results(d)).hlen(keys.buffer(d));
      const replies = (await pipeline.exec()) ?? [];
      let results = 0;
      let buffered = 0;
      replies.forEach(([, value], k) => {
        if (k % 2 === 0) results += Number(value ?? 0);
        else buffered += Number(value ?? 0);
      });
      const unread = typeof group?.lag === 'number' ? String(group.lag) : '?';
      const unsettled = typeof group?.pending === 'number' ? String(group.pending) : '?';
      return `input unread ${unread}, unsettled ${unsettled}; results ${String(results)}; buffered ${String(buffered)}`;
    } catch {
      return 'redis down';
    }
  }

  close(): void {
    this.#client.disconnect();
  }
}

function toRecord(flat: unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let k = 0; k + 1 < flat.length; k += 2) record[String(flat[k])] = flat[k + 1];
  return record;
}
