/**
 * The resequencer-sender's Prometheus metrics.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metrics of one sender process. */
export interface SenderMetrics {
  deliveries: Counter<'destination' | 'outcome'>;
  delivered: Gauge<'destination'>;
  buffered: Gauge<'destination'>;
  blocked: Gauge<'destination'>;
  duplicates: Counter<'destination'>;
  deadLetters: Counter<'destination'>;
  endToEnd: Histogram<'destination'>;
  gapAge: Gauge<'destination'>;
  lostSequences: Counter<'destination'>;
  leasesHeld: Gauge;
  leasesAcquired: Counter;
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
  };
}
