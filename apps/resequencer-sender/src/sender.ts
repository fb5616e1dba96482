/**
 * The resequencer-sender's engine: a {@link LeaseManager} decides which destinations this
 * process serves, a {@link DestinationLane} per held destination delivers in order, a
 * {@link ResultReader} per shard (RESEQ_SHARDS; one by default) feeds the lanes of that shard's
 * destinations, and a {@link ProgressRecorder} per shard batches their progress into `advance`
 * calls (so a shard whose master fails over holds up no other shard's progress).
 */
import type { ReseqConfig } from '@reseq/config';
import type { Delivery } from '@reseq/delivery';
import type { Logger } from '@reseq/runtime';
import { advanceDelivered, waitPolicy, writesLeftProcess, type ReseqRedis, type Shards } from '@reseq/store';
import type { Redis } from 'ioredis';
import { DestinationLane } from './destination-lane.js';
import { LeaseManager } from './lease-manager.js';
import { ProgressRecorder } from './progress-recorder.js';
import { ResultReader } from './result-reader.js';
import type { SenderMetrics } from './sender-metrics.js';

/** What the sender needs. */
export interface SenderDeps {
  config: ReseqConfig;
  logger: Logger;
  /** The pipeline's shards: which keys hold each destination. */
  shards: Shards;
  redis: ReseqRedis;
  /** One connection reserved for blocking reads per shard, shard 0 first. */
  blocking: readonly Redis[];
  senderId: string;
  deliveries: ReadonlyMap<string, Delivery>;
  metrics: SenderMetrics;
}

/** One resequencer-sender process. */
export class ResequencerSender {
  readonly #deps: SenderDeps;
  readonly #lanes = new Map<string, DestinationLane>();
  /** Counts the changes of `#lanes`, so the readers make their read plans again only then. */
  #lanesVersion = 0;
  readonly #leases: LeaseManager;
  readonly #readers: ResultReader[];
  /** One per shard, shard 0 first. */
  readonly #recorders: ProgressRecorder[];
  readonly #log: Logger;

  constructor(deps: SenderDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'sender', senderId: deps.senderId });
    this.#recorders = deps.shards.all.map(
      (keys) =>
        new ProgressRecorder(
          (steps) => advanceDelivered(deps.redis, keys, steps),
          this.#log,
          () => deps.config.sender.recordAhead && writesLeftProcess(deps.redis),
        ),
    );
    this.#leases = new LeaseManager({
      redis: deps.redis,
      shards: deps.shards,
      senderId: deps.senderId,
      destinations: Object.keys(deps.config.destinations),
      ttlMs: deps.config.sender.leaseTtlMs,
      logger: this.#log,
      events: {
        acquired: (destination, leaseValue) => this.#openLane(destination, leaseValue),
        lost: (destination) => this.#closeLane(destination, 'lost'),
        surplus: (destination) => this.#closeLane(destination, 'graceful'),
      },
    });
    const { shards } = deps;
    this.#readers = shards.all.map(
      (keys, shard) =>
        new ResultReader({
          redis: deps.redis,
          blocking: deps.blocking[shard]!,
          keys,
          batchSize: deps.config.sender.batchSize,
          logger: this.#log,
          lanesVersion: () => this.#lanesVersion,
          lanes: () =>
            shards.count === 1
              ? this.#lanes
              : new Map([...this.#lanes].filter(([destination]) => shards.shardOf(destination) === shard)),
          onFenced: (destination) => this.#fenced(destination),
          moveFirst: waitPolicy(deps.redis) !== undefined,
        }),
    );
  }

  /** Whether the lease loop is alive (for /readyz). */
  get alive(): boolean {
    return this.#leases.alive;
  }

  async start(): Promise<void> {
    await this.#leases.start();
    for (const reader of this.#readers) reader.start();
    this.#log.info({ destinations: [...this.#lanes.keys()] }, 'resequencer-sender started');
  }

  /** Finishes in-flight deliveries, records them, and gives every lease back at once. */
  async stop(): Promise<void> {
    await this.#leases.stop();
    await Promise.all(this.#readers.map((reader) => reader.stop()));
    await Promise.all([...this.#lanes.values()].map((lane) => lane.stop('graceful')));
    this.#lanes.clear();
    this.#lanesVersion++;
    await this.#leases.releaseAll();
  }

  async #openLane(destination: string, leaseValue: string): Promise<void> {
    const delivery = this.#deps.deliveries.get(destination);
    const config = this.#deps.config.destinations[destination];
    if (!delivery || !config) throw new Error(`no delivery for ${destination}`);
    await this.#lanes.get(destination)?.stop('lost');
    const lane = await DestinationLane.open(
      {
        destination,
        config,
        delivery,
        redis: this.#deps.redis,
        keys: this.#deps.shards.forDestination(destination),
        recorder: this.#recorders[this.#deps.shards.shardOf(destination)]!,
        metrics: this.#deps.metrics,
        logger: this.#deps.logger,
        leaseValid: () => this.#leases.isValid(destination),
        onFenced: () => this.#fenced(destination),
        gapTimeoutMs: this.#deps.config.sender.gapTimeoutMs,
        historyLength: this.#deps.config.sender.historyLength,
      },
      leaseValue,
    );
    this.#lanes.set(destination, lane);
    this.#lanesVersion++;
    this.#deps.metrics.leasesAcquired.inc();
    // Fencing tokens count up from 1 per destination: above 1, another sender held it before.
    if (Number(leaseValue.slice(leaseValue.lastIndexOf('|') + 1)) > 1) this.#deps.metrics.leaseTakeovers.inc();
    this.#deps.metrics.leasesHeld.set(this.#lanes.size);
  }

  async #closeLane(destination: string, mode: 'graceful' | 'lost'): Promise<void> {
    const lane = this.#lanes.get(destination);
    if (!lane) return;
    await lane.stop(mode);
    if (this.#lanes.get(destination) === lane) {
      this.#lanes.delete(destination);
      this.#lanesVersion++;
    }
    this.#deps.metrics.leasesHeld.set(this.#lanes.size);
  }

  #fenced(destination: string): void {
    this.#log.warn({ destination }, 'fenced: another sender holds this destination now');
    this.#leases.forget(destination);
    void this.#closeLane(destination, 'lost');
  }
}
