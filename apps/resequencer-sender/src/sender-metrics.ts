/**
 * The resequencer-sender's Prometheus metrics.
 */
import type { KeySchema, ReseqRedis, Shards } from '@reseq/store';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metrics of one sender process. */
export interface SenderMetrics {
  deliveries: Counter<'destination' | 'outcome'>;
  delivered: Gauge<'destination'>;
  buffered: Gauge<'destination'>;
  blocked: Gauge<'destination'>;
  paused: Gauge<'destination'>;
  duplicates: Counter<'destination'>;
  deadLetters: Counter<'destination'>;
  endToEnd: Histogram<'destination'>;
  /** Messages per request of an HTTP destination with batch delivery (`batch.maxMessages`). */
  batchMessages: Histogram<'destination'>;
  gapAge: Gauge<'destination'>;
  lostSequences: Counter<'destination'>;
  leasesHeld: Gauge;
  leasesAcquired: Counter;
  leaseTakeovers: Counter;
}

/** Registers the sender's metrics on an app registry. */
export function createSenderMetrics(registry: Registry): SenderMetrics {
  const registers = [registry];
  return {
    deliveries: new Counter({
      name: 'reseq_deliveries_total',
      help: 'Delivery attempts, by destination and outcome (delivered, retried, rejected)',
      labelNames: ['destination', 'outcome'],
      registers,
    }),
    delivered: new Gauge({
      name: 'reseq_delivered_sequence',
      help: 'Last sequence settled per destination (by this sender)',
      labelNames: ['destination'],
      registers,
    }),
    buffered: new Gauge({
      name: 'reseq_reorder_buffer_depth',
      help: 'Results held out of order, waiting for an earlier sequence',
      labelNames: ['destination'],
      registers,
    }),
    blocked: new Gauge({
      name: 'reseq_destination_blocked',
      help: '1 while a dead letter blocks the destination',
      labelNames: ['destination'],
      registers,
    }),
    paused: new Gauge({
      name: 'reseq_destination_paused',
      help: '1 while an operator has paused the destination (reseq destination pause)',
      labelNames: ['destination'],
      registers,
    }),
    duplicates: new Counter({
      name: 'reseq_duplicate_results_total',
      help: 'Results that arrived twice (e.g. a recovered worker finishing late) and were dropped',
      labelNames: ['destination'],
      registers,
    }),
    deadLetters: new Counter({
      name: 'reseq_dead_letters_total',
      help: 'Messages dead-lettered (by a transform or refused by the destination)',
      labelNames: ['destination'],
      registers,
    }),
    endToEnd: new Histogram({
      name: 'reseq_end_to_end_seconds',
      help: 'From ingest accepting a message to its destination answering 2xx',
      labelNames: ['destination'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60],
      registers,
    }),
    batchMessages: new Histogram({
      name: 'reseq_delivery_batch_messages',
      help: 'Messages per delivered batch request of two or more (HTTP destinations with batch.maxMessages above 1)',
      labelNames: ['destination'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
      registers,
    }),
    gapAge: new Gauge({
      name: 'reseq_gap_age_seconds',
      help: 'How long the destination has been waiting for its next sequence while later ones exist (0: no gap)',
      labelNames: ['destination'],
      registers,
    }),
    lostSequences: new Counter({
      name: 'reseq_lost_sequences_total',
      help: 'Sequences found nowhere after the gap timeout (GAP_LOST dead letters)',
      labelNames: ['destination'],
      registers,
    }),
    leasesHeld: new Gauge({ name: 'reseq_leases_held', help: 'Destination leases this sender holds', registers }),
    leasesAcquired: new Counter({
      name: 'reseq_lease_acquisitions_total',
      help: 'Destination leases taken by this sender (takeovers included)',
      registers,
    }),
    leaseTakeovers: new Counter({
      name: 'reseq_lease_takeovers_total',
      help: 'Leases this sender took that an earlier sender had held (fencing token above 1)',
      registers,
    }),
  };
}

/**
 * Registers the backlog per destination, read from Redis at each scrape (two cheap reads per
 * destination): results in its stream not yet delivered or buffered, and results in its buffer hash. Every
 * sender reports every configured destination, so the figure does not depend on who holds the
 * lease; a scrape while Redis is unreachable leaves the last values.
 */
export function registerBacklogMetrics(
  registry: Registry,
  redis: ReseqRedis,
  shards: Shards,
  destinations: readonly string[],
): void {
  const results = new Gauge({
    name: 'reseq_result_stream_length',
    help: 'Entries in the result stream of the destination (XLEN): transformed, not yet delivered or moved into the buffer by its sender',
    labelNames: ['destination'],
    registers: [registry],
    async collect() {
      await readBacklog();
    },
  });
  const buffer = new Gauge({
    name: 'reseq_buffer_length',
    help: 'Results in the reorder-buffer hash of the destination in Redis (HLEN), waiting for their turn',
    labelNames: ['destination'],
    registers: [registry],
  });
  async function readBacklog(): Promise<void> {
    // One transaction per shard: a transaction's keys must share a slot on a Redis Cluster.
    await Promise.all([...shards.group(destinations, (d) => d)].map(([keys, own]) => readShard(keys, own)));
  }
  async function readShard(keys: KeySchema, own: readonly string[]): Promise<void> {
    const multi = redis.multi();
    for (const d of own) multi.xlen(keys.results(d)).hlen(keys.buffer(d));
    const replies = await multi.exec().catch(() => null);
    if (!replies) return;
    own.forEach((d, i) => {
      const [xlenErr, xlen] = replies[i * 2] ?? [null, null];
      const [hlenErr, hlen] = replies[i * 2 + 1] ?? [null, null];
      if (!xlenErr && xlen !== null) results.set({ destination: d }, Number(xlen));
      if (!hlenErr && hlen !== null) buffer.set({ destination: d }, Number(hlen));
    });
  }
}
