/**
 * Keeps this sender's share of destination leases. Every `ttl / 3` it announces itself, renews
 * the leases it holds (reporting the lost ones), takes free leases up to its fair share
 * (destinations / live senders, so more senders share the work) and gives back its surplus
 * when senders join. A lease counts as valid locally only until its renewal was sent plus the
 * TTL minus a safety margin, so a paused process stops delivering before a peer can take over.
 * With several shards (RESEQ_SHARDS) the fair share still counts every destination; each lease
 * script call touches one shard's leases (renewals and releases in parallel, new leases shard
 * by shard until the share is reached), and the heartbeats live on the pipeline's own tag.
 */
import { randomInt } from 'node:crypto';
import { sleep, type Logger } from '@reseq/runtime';
import {
  acquireLeases,
  releaseLeases,
  renewLeases,
  ReplicasUnavailableError,
  senderHeartbeat,
  type ReseqRedis,
  type Shards,
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
  shards: Shards;
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
    const { redis, shards, senderId, ttlMs } = this.#options;
    await this.#release(new Map([...this.#held].map(([d, h]) => [d, h.value])));
    this.#held.clear();
    await senderHeartbeat(redis, shards.home, senderId, ttlMs, false);
  }

  /** Releases leases, one script call per shard. */
  async #release(leases: ReadonlyMap<string, string>): Promise<void> {
    const { redis, shards } = this.#options;
    await Promise.all(
      [...shards.group(leases, ([d]) => d)].map(([keys, own]) => releaseLeases(redis, keys, new Map(own))),
    );
  }

  /** Renews held leases, one script call per shard; returns the lost ones. */
  async #renew(leases: ReadonlyMap<string, string>, ttlMs: number): Promise<string[]> {
    const { redis, shards } = this.#options;
    if (shards.count === 1) return renewLeases(redis, shards.home, leases, ttlMs);
    const lost = await Promise.all(
      [...shards.group(leases, ([d]) => d)].map(([keys, own]) => renewLeases(redis, keys, new Map(own), ttlMs)),
    );
    return lost.flat();
  }

  /**
   * Takes up to `maxNew` free leases among `candidates` (in their order, shard by shard) or
   * extends the caller's own. Where a shard's call is not confirmed after others took leases,
   * those are kept and the rest waits for the next tick.
   * @throws {ReplicasUnavailableError} where the first call taking any is not confirmed.
   */
  async #acquire(candidates: readonly string[], maxNew: number, ttlMs: number): Promise<Map<string, string>> {
    const { redis, shards, senderId, logger } = this.#options;
    if (shards.count === 1) return acquireLeases(redis, shards.home, senderId, candidates, ttlMs, maxNew);
    const taken = new Map<string, string>();
    for (const [keys, own] of shards.group(candidates, (d) => d)) {
      if (taken.size >= maxNew) break;
      try {
        for (const [d, value] of await acquireLeases(redis, keys, senderId, own, ttlMs, maxNew - taken.size))
          taken.set(d, value);
      } catch (err) {
        if (taken.size === 0 || !(err instanceof ReplicasUnavailableError)) throw err;
        logger.warn({ err }, 'leases of one shard not confirmed by enough replicas; retrying at the next tick');
        break;
      }
    }
    return taken;
  }

  async #handOver(destination: string, live: number): Promise<void> {
    const { events, logger } = this.#options;
    try {
      await events.surplus(destination);
      const held = this.#held.get(destination);
      this.#held.delete(destination);
      if (held) await this.#release(new Map([[destination, held.value]]));
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
    const { redis, shards, senderId, destinations, ttlMs, events, logger } = this.#options;
    const sentAt = performance.now();
    const live = await senderHeartbeat(redis, shards.home, senderId, ttlMs, true);

    const current = new Map([...this.#held].map(([d, h]) => [d, h.value]));
    const lost = await this.#renew(current, ttlMs);
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
      const taken = await this.#acquire(candidates, target - keeping, ttlMs);
      for (const [destination, value] of taken) {
        this.#held.set(destination, { value, validUntil: sentAt + ttlMs - this.#margin });
        try {
          await events.acquired(destination, value);
        } catch (err) {
          logger.warn({ err, destination }, 'could not open the lane; giving the lease back');
          this.#held.delete(destination);
          await this.#release(new Map([[destination, value]]));
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
