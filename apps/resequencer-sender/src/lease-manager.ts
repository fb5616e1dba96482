/**
 * Keeps this sender's share of destination leases. Every `ttl / 3` it announces itself, renews
 * the leases it holds (reporting the lost ones), takes free leases up to its fair share
 * (destinations / live senders, so more senders share the work) and gives back its surplus
 * when senders join. A lease counts as valid locally only until its renewal was sent plus the
 * TTL minus a safety margin, so a paused process stops delivering before a peer can take over.
 */
import { randomInt } from 'node:crypto';
import { sleep, type Logger } from '@reseq/runtime';
import {
  acquireLeases,
  releaseLeases,
  renewLeases,
  ReplicasUnavailableError,
  senderHeartbeat,
  type KeySchema,
  type ReseqRedis,
} from '@reseq/store';

/** Callbacks of the lease manager; each is awaited before the next tick. */
export interface LeaseEvents {
  acquired(destination: string, leaseValue: string): Promise<void>;
  lost(destination: string): Promise<void>;
  /** Stop the destination's lane gracefully; the manager releases the lease afterwards. */
  surplus(destination: string): Promise<void>;
}

/** Options of {@link LeaseManager}. */
export interface LeaseManagerOptions {
  redis: ReseqRedis;
  keys: KeySchema;
  senderId: string;
  destinations: readonly string[];
  ttlMs: number;
  logger: Logger;
  events: LeaseEvents;
}

interface Held {
  value: string;
  validUntil: number;
}

/** Takes, renews and gives back destination leases. */
export class LeaseManager {
  readonly #options: LeaseManagerOptions;
  readonly #held = new Map<string, Held>();
  /** Leases being handed over: still renewed until their lane has stopped. */
  readonly #releasing = new Set<string>();
  readonly #stopping = new AbortController();
  readonly #margin: number;
  #loop: Promise<void> = Promise.resolve();
  #lastTick = 0;

  constructor(options: LeaseManagerOptions) {
    this.#options = options;
    this.#margin = Math.max(500, options.ttlMs * 0.2);
  }

  /** Whether the loop ticked recently (for /readyz). */
  get alive(): boolean {
    return performance.now() - this.#lastTick < this.#options.ttlMs;
  }

  /** How many leases this sender holds. */
  get heldCount(): number {
    return this.#held.size;
  }

  /** Whether the lease of `destination` is safely ours by the local clock. */
  isValid(destination: string): boolean {
    const held = this.#held.get(destination);
    return held !== undefined && performance.now() < held.validUntil;
  }

  /** Runs the first tick (so leases are taken before this resolves) and starts the loop. */
  async start(): Promise<void> {
    try {
      await this.#tick();
    } catch (err) {
      // Too few replicas to confirm a lease: start without one; the loop tries again.
      if (!(err instanceof ReplicasUnavailableError)) throw err;
      this.#options.logger.warn({ err }, 'leases not confirmed by enough replicas; retrying');
    }
    this.#loop = this.#run();
  }

  /** Forgets a lease a fenced write showed to be lost. */
  forget(destination: string): void {
    this.#held.delete(destination);
  }

  /** Stops ticking; the caller then stops its lanes and calls {@link releaseAll}. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#loop;
  }

  /** Releases every held lease at once and withdraws this sender. */
  async releaseAll(): Promise<void> {
    const { redis, keys, senderId, ttlMs } = this.#options;
    await releaseLeases(redis, keys, new Map([...this.#held].map(([d, h]) => [d, h.value])));
    this.#held.clear();
    await senderHeartbeat(redis, keys, senderId, ttlMs, false);
  }

  async #handOver(destination: string, live: number): Promise<void> {
    const { redis, keys, events, logger } = this.#options;
    try {
      await events.surplus(destination);
      const held = this.#held.get(destination);
      this.#held.delete(destination);
      if (held) await releaseLeases(redis, keys, new Map([[destination, held.value]]));
      logger.info({ destination, liveSenders: live }, 'lease handed over to share destinations among senders');
    } catch (err) {
      logger.warn({ err, destination }, 'handing a lease over failed; it expires on its own');
    } finally {
      this.#releasing.delete(destination);
    }
  }

  async #run(): Promise<void> {
    const interval = Math.max(100, Math.floor(this.#options.ttlMs / 3));
    while (!this.#stopping.signal.aborted) {
      await sleep(interval, this.#stopping.signal);
      if (this.#stopping.signal.aborted) return;
      try {
        await this.#tick();
      } catch (err) {
        this.#options.logger.warn({ err }, 'lease tick failed; retrying');
      }
    }
  }

  async #tick(): Promise<void> {
    const { redis, keys, senderId, destinations, ttlMs, events, logger } = this.#options;
    const sentAt = performance.now();
    const live = await senderHeartbeat(redis, keys, senderId, ttlMs, true);

    const current = new Map([...this.#held].map(([d, h]) => [d, h.value]));
    const lost = await renewLeases(redis, keys, current, ttlMs);
    for (const held of this.#held.values()) held.validUntil = sentAt + ttlMs - this.#margin;
    for (const destination of lost) {
      this.#held.delete(destination);
      logger.warn({ destination }, 'lease lost (expired or taken over)');
      await events.lost(destination);
    }

    const target = Math.ceil(destinations.length / Math.max(1, live));
    const keeping = this.#held.size - this.#releasing.size;
    if (keeping < target && !this.#stopping.signal.aborted) {
      // Start at a random place so senders starting together do not all race for the same ones.
      const free = destinations.filter((d) => !this.#held.has(d));
      const offset = free.length > 0 ? randomInt(free.length) : 0;
      const candidates = [...free.slice(offset), ...free.slice(0, offset)];
      const taken = await acquireLeases(redis, keys, senderId, candidates, ttlMs, target - keeping);
      for (const [destination, value] of taken) {
        this.#held.set(destination, { value, validUntil: sentAt + ttlMs - this.#margin });
        try {
          await events.acquired(destination, value);
        } catch (err) {
          logger.warn({ err, destination }, 'could not open the lane; giving the lease back');
          this.#held.delete(destination);
          await releaseLeases(redis, keys, new Map([[destination, value]]));
        }
      }
    } else if (keeping > target && !this.#stopping.signal.aborted) {
      const surplus = [...this.#held.keys()].filter((d) => !this.#releasing.has(d)).slice(0, keeping - target);
      // Hand over in the background: a lane may need a while to finish its delivery, and the
      // other leases must keep being renewed meanwhile.
      for (const destination of surplus) {
        this.#releasing.add(destination);
        void this.#handOver(destination, live);
      }
    }
    this.#lastTick = performance.now();
  }
}
