/**
 * Holds one source's lease in reseq's Redis (@reseq/store's source-store): only the ingest that
 * holds it consumes the source, so several ingests never take two of its jobs at once. Renewed
 * every third of its time to live; `onAcquired` starts consuming, `onLost` stops.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@reseq/runtime';
import {
  acquireSourceLease,
  releaseSourceLease,
  renewSourceLease,
  type KeySchema,
  type ReseqRedis,
} from '@reseq/store';

/** Options of {@link SourceLease}. */
export interface SourceLeaseOptions {
  redis: ReseqRedis;
  keys: KeySchema;
  /** This ingest's id (the lease owner). */
  owner: string;
  /** The source's id (config `sourceId`). */
  source: string;
  ttlMs: number;
  logger: Logger;
  /** Called once per tenure, after the lease was taken. */
  onAcquired: () => void;
  /** Called once per tenure, when the lease was lost or is being given back. */
  onLost: () => Promise<void>;
}

/** One source's lease, kept until {@link SourceLease.stop}. */
export class SourceLease {
  #value: string | undefined;
  /** Local time after which the lease may have expired in Redis (counted from before the call). */
  #deadline = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(private readonly options: SourceLeaseOptions) {}

  /**
   * Whether this ingest still holds the lease with time to spare: checked before each job is
   * submitted, so a holder that was paused past its lease takes no further step.
   */
  get valid(): boolean {
    return this.#value !== undefined && !this.#stopping && Date.now() < this.#deadline - this.options.ttlMs / 5;
  }

  /** Starts trying to take (then keep) the lease. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops consuming (onLost) and gives the lease back at once. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { redis, keys, owner, source, ttlMs, logger } = this.options;
    while (!this.#stopping) {
      const started = Date.now();
      try {
        if (this.#value === undefined) {
          const value = await acquireSourceLease(redis, keys, owner, source, ttlMs);
          if (value !== undefined && !this.#stopping) {
            this.#value = value;
            this.#deadline = started + ttlMs;
            logger.info({ source, lease: value }, 'source lease taken');
            this.options.onAcquired();
          }
        } else if (await renewSourceLease(redis, keys, source, this.#value, ttlMs)) {
          this.#deadline = started + ttlMs;
        } else {
          await this.#lose('lost');
        }
      } catch (err) {
        logger.warn({ err, source }, 'source lease: Redis call failed');
      }
      if (this.#value !== undefined && Date.now() >= this.#deadline) await this.#lose('expired');
      await sleep(ttlMs / 3);
    }
    const value = this.#value;
    if (value !== undefined) {
      await this.#lose('released');
      await releaseSourceLease(redis, keys, source, value).catch((err: unknown) => {
        logger.warn({ err, source }, 'source lease: could not release; it expires on its own');
      });
    }
  }

  async #lose(why: string): Promise<void> {
    this.options.logger.warn({ source: this.options.source, why }, 'source lease given up');
    this.#value = undefined;
    await this.options.onLost();
  }
}
