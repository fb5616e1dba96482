/**
 * The transform worker's Prometheus metrics.
 */
import { WORKER_GROUP, type KeySchema, type ReseqRedis } from '@reseq/store';
import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { SlotPool } from './slot-pool.js';

/** Metrics of one worker process. */
export interface WorkerMetrics {
  transforms: Counter<'outcome'>;
  duration: Histogram<'outcome'>;
  inFlight: Gauge;
  claimed: Counter;
  deletedEntries: Counter;
  /** Hedged dispatch (`worker.hedgeAfterMs`); stay 0 while it is off. */
  hedgesRequested: Counter;
  hedgesStarted: Counter;
  hedgesWon: Counter;
}

/** Registers the worker's metrics on an app registry. */
export function createWorkerMetrics(registry: Registry, slots: SlotPool): WorkerMetrics {
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
    // Read from the slots at each scrape, not set twice per message.
    inFlight: new Gauge({
      name: 'reseq_transforms_in_flight',
      help: 'Transforms running now, over every shard (transform slots taken)',
      registers,
      collect() {
        this.set(slots.inFlight);
      },
    }),
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
    hedgesRequested: new Counter({
      name: 'reseq_hedges_requested_total',
      help: 'Transforms of this worker that ran past worker.hedgeAfterMs and asked for a hedge on another worker',
      registers,
    }),
    hedgesStarted: new Counter({
      name: 'reseq_hedges_started_total',
      help: "Hedge copies this worker started of another worker's slow transform",
      registers,
    }),
    hedgesWon: new Counter({
      name: 'reseq_hedges_won_total',
      help: 'Hedge copies of this worker that finished first: their result is the one recorded',
      registers,
    }),
  };
}

/**
 * Registers the input backlog, read from Redis at each scrape: the input stream's length, and
 * of the workers' group the entries not yet handed to any worker (lag) and those handed out and
 * not yet settled (pending), each summed over the shards' input streams (RESEQ_SHARDS). A scrape
 * while Redis is unreachable leaves the last values.
 */
export function registerInputBacklogMetrics(registry: Registry, redis: ReseqRedis, shards: readonly KeySchema[]): void {
  const length = new Gauge({
    name: 'reseq_input_stream_length',
    help: 'Entries in the input stream (XLEN): not yet transformed, in flight, and settled behind one still in flight (trimmed once it settles)',
    registers: [registry],
    async collect() {
      await read();
    },
  });
  const lag = new Gauge({
    name: 'reseq_input_group_lag',
    help: 'Input entries not yet handed to any transform worker (XINFO GROUPS lag)',
    registers: [registry],
  });
  const pending = new Gauge({
    name: 'reseq_input_group_pending',
    help: 'Input entries handed to a transform worker and not yet settled (XINFO GROUPS pending)',
    registers: [registry],
  });
  async function read(): Promise<void> {
    try {
      const totals = { length: 0, pending: 0, lag: 0, lagKnown: true };
      await Promise.all(shards.map((keys) => readShard(keys, totals)));
      length.set(totals.length);
      pending.set(totals.pending);
      if (totals.lagKnown) lag.set(totals.lag);
    } catch {
      // Redis unreachable, or no stream yet: keep the last values.
    }
  }
  async function readShard(
    keys: KeySchema,
    totals: { length: number; pending: number; lag: number; lagKnown: boolean },
  ): Promise<void> {
    // One round trip; on a Redis Cluster, XINFO (whose key ioredis does not see) rides with
    // XLEN to the stream's master instead of a random one that would redirect it.
    const [[lengthError, streamLength] = [null, 0], [groupsError, groupsReply] = [null, []]] =
      (await redis.pipeline().xlen(keys.input).call('XINFO', 'GROUPS', keys.input).exec()) ?? [];
    if (lengthError) throw lengthError;
    totals.length += Number(streamLength);
    if (groupsError) throw groupsError;
    const groups = groupsReply as unknown[][];
    for (const group of groups) {
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < group.length; i += 2) fields.set(String(group[i]), group[i + 1]);
      if (fields.get('name') !== WORKER_GROUP) continue;
      totals.pending += Number(fields.get('pending') ?? 0);
      const groupLag = fields.get('lag');
      if (groupLag !== null && groupLag !== undefined) totals.lag += Number(groupLag);
      else totals.lagKnown = false;
    }
  }
}
