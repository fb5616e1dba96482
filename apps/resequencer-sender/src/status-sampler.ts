/**
 * Feeds the live status page: once a second it reads every destination's state from Redis
 * (the same snapshot `reseq status` shows) and keeps a ring of per-second samples, throughput
 * from the delivered position and latency from this sender's end-to-end histogram.
 */
import type { Logger } from '@reseq/runtime';
import {
  knownDestinationsOfShards,
  readStatusOfShards,
  type DestinationStatus,
  type ReseqRedis,
  type Shards,
} from '@reseq/store';
import type { Histogram } from 'prom-client';

/** One destination at one second. */
export interface LaneSample {
  /** Sequences settled per second since the previous sample (all senders: read from Redis). */
  throughput: number;
  /**
   * Mean end-to-end latency in ms of the deliveries this sender made in that second; null
   * when it made none.
   */
  latencyMs: number | null;
}

/** One tick of the ring. */
export interface StatusSample {
  /** ms since the epoch. */
  at: number;
  lanes: Record<string, LaneSample>;
}

/** What `/status.json` answers. */
export interface StatusSnapshot {
  /** When the destinations were read, ms since the epoch; null before the first read. */
  at: number | null;
  /** This process's sender id (compare with each lane's `activeSender`). */
  senderId: string;
  destinations: Record<string, DestinationStatus>;
  /** Oldest first, one per second, at most {@link StatusSamplerOptions.historySeconds}. */
  history: StatusSample[];
}

/** Options of {@link StatusSampler}. */
export interface StatusSamplerOptions {
  /** With reseq's scripts defined (the status read runs one). */
  redis: ReseqRedis;
  /** The pipeline's shards (RESEQ_SHARDS): each destination is read on its own. */
  shards: Shards;
  /** Destinations of the config, shown first; any other that Redis knows follows. */
  configured: readonly string[];
  senderId: string;
  endToEnd: Histogram<'destination'>;
  logger: Logger;
  /** Default 1000. */
  intervalMs?: number;
  /** Samples kept; default 300 (five minutes at one a second). */
  historySeconds?: number;
}

interface Totals {
  at: number;
  delivered: Map<string, number>;
  latencySum: Map<string, number>;
  latencyCount: Map<string, number>;
}

/** The in-memory ring of per-second samples behind the status page. */
export class StatusSampler {
  readonly #options: StatusSamplerOptions;
  readonly #history: StatusSample[] = [];
  #destinations: Record<string, DestinationStatus> = {};
  #at: number | null = null;
  #previous: Totals | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: StatusSamplerOptions) {
    this.#options = options;
  }

  /** Takes the first sample now, then one per interval until {@link stop}. */
  start(): void {
    if (this.#timer) return;
    const tick = (): void => {
      this.#running ??= this.sample()
        .catch((err: unknown) => this.#options.logger.warn({ err }, 'status sample failed'))
        .finally(() => (this.#running = undefined));
    };
    tick();
    this.#timer = setInterval(tick, this.#options.intervalMs ?? 1000);
    this.#timer.unref();
  }

  /** Stops sampling; waits for a read in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** The latest snapshot and the ring, oldest first. */
  snapshot(): StatusSnapshot {
    return {
      at: this.#at,
      senderId: this.#options.senderId,
      destinations: this.#destinations,
      history: [...this.#history],
    };
  }

  /** Reads Redis and the histogram once and appends a sample (the first read only sets a baseline). */
  async sample(now = Date.now()): Promise<void> {
    const { redis, shards, configured } = this.#options;
    const names = await knownDestinationsOfShards(redis, shards, configured);
    const states = await readStatusOfShards(redis, shards, names);
    const totals: Totals = { at: now, delivered: new Map(), latencySum: new Map(), latencyCount: new Map() };
    for (const [name, state] of states) totals.delivered.set(name, state.delivered);
    for (const value of (await this.#options.endToEnd.get()).values) {
      const destination = value.labels.destination;
      if (typeof destination !== 'string') continue;
      if (value.metricName?.endsWith('_sum')) totals.latencySum.set(destination, value.value);
      if (value.metricName?.endsWith('_count')) totals.latencyCount.set(destination, value.value);
    }
    this.#destinations = Object.fromEntries(states);
    this.#at = now;
    const previous = this.#previous;
    this.#previous = totals;
    if (!previous) return;
    const seconds = Math.max(0.001, (now - previous.at) / 1000);
    const lanes: Record<string, LaneSample> = {};
    for (const name of names) {
      const delivered = (totals.delivered.get(name) ?? 0) - (previous.delivered.get(name) ?? 0);
      const count = (totals.latencyCount.get(name) ?? 0) - (previous.latencyCount.get(name) ?? 0);
      const sum = (totals.latencySum.get(name) ?? 0) - (previous.latencySum.get(name) ?? 0);
      lanes[name] = {
        throughput: Math.max(0, delivered) / seconds,
        latencyMs: count > 0 ? (sum / count) * 1000 : null,
      };
    }
    this.#history.push({ at: now, lanes });
    const keep = this.#options.historySeconds ?? 300;
    if (this.#history.length > keep) this.#history.splice(0, this.#history.length - keep);
  }
}
