/**
 * The transform worker's Prometheus metrics.
 */
import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';

/** Metrics of one worker process. */
export interface WorkerMetrics {
  transforms: Counter<'outcome'>;
  duration: Histogram<'outcome'>;
  inFlight: Gauge;
  claimed: Counter;
  deletedEntries: Counter;
}

/** Registers the worker's metrics on an app registry. */
export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const registers = [registry];
  return {
    transforms: new Counter({
      name: 'reseq_transforms_total',
      help: 'Messages settled by this worker, by outcome: value, none (dropped) or dead (dead-lettered)',
      labelNames: ['outcome'],
      registers,
    }),
    duration: new Histogram({
      name: 'reseq_transform_duration_seconds',
      help: 'Duration of one transform attempt, by outcome (ok, error, timeout)',
      labelNames: ['outcome'],
      // Dense around the ~750 ms the seed's transforms take.
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 0.625, 0.75, 0.875, 1, 1.5, 2.5, 5, 10, 30, 60],
      registers,
    }),
    inFlight: new Gauge({ name: 'reseq_transforms_in_flight', help: 'Transforms running now', registers }),
    claimed: new Counter({
      name: 'reseq_worker_claimed_total',
      help: 'Entries taken over from stopped or crashed workers',
      registers,
    }),
    deletedEntries: new Counter({
      name: 'reseq_worker_deleted_pending_total',
      help: 'Pending entries found deleted from the input stream (their messages are lost)',
      registers,
    }),
  };
}
