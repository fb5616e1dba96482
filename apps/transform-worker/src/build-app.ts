/**
 * The transform-worker app: loads the user's transform, connects to Redis (one connection for
 * commands, one reserved for blocking reads per shard) and runs a {@link TransformWorker} per
 * shard (RESEQ_SHARDS; one by default), all sharing WORKER_CONCURRENCY transform slots.
 */
import { hostname } from 'node:os';
import type { ReseqConfig } from '@reseq/config';
import {
  createMetrics,
  startOpsServer,
  startRoundTripProbe,
  type Logger,
  type OpsServer,
  type RunningApp,
} from '@reseq/runtime';
import { connectPipeline, isRedisReady } from '@reseq/store';
import { loadTransform, type TransformFn } from './load-transform.js';
import { SlotPool } from './slot-pool.js';
import { TransformWorker } from './worker.js';
import { createWorkerMetrics, registerInputBacklogMetrics } from './worker-metrics.js';

/** Options of {@link buildWorker}. */
export interface WorkerOptions {
  config: ReseqConfig;
  logger: Logger;
  /** A transform to use instead of TRANSFORM_MODULE (tests, embedding). */
  transform?: TransformFn;
}

/** Starts a transform worker. */
export async function buildWorker({ config, logger, transform }: WorkerOptions): Promise<RunningApp> {
  const fn = transform ?? (await loadTransform(config.env.TRANSFORM_MODULE));
  const consumer = config.env.RESEQ_CONSUMER_NAME ?? `${hostname()}-${process.pid}`;
  const { shards, redis, blocking } = await connectPipeline(config.env, {
    name: `worker:${consumer}`,
    logger,
    mode: 'wait',
    blockingReads: true,
  });
  const { registry } = createMetrics('transform-worker');
  registerInputBacklogMetrics(registry, redis, shards.all);
  const probe = startRoundTripProbe({ ping: () => redis.ping(), registry });
  const slots = new SlotPool(config.env.WORKER_CONCURRENCY);
  const metrics = createWorkerMetrics(registry, slots);
  const engines = shards.all.map(
    (keys, shard) =>
      new TransformWorker({
        config,
        logger,
        transform: fn,
        keys,
        redis,
        blocking: blocking[shard]!,
        consumer,
        metrics,
        slots,
      }),
  );
  for (const engine of engines) await engine.start();
  let ops: OpsServer | undefined;
  if (config.env.METRICS_PORT !== undefined) {
    ops = await startOpsServer({
      port: config.env.METRICS_PORT,
      registry,
      readiness: { redis: () => isRedisReady(redis), worker: () => engines.every((engine) => engine.alive) },
    });
  }
  return {
    async stop() {
      probe.stop();
      await Promise.all(engines.map((engine) => engine.stop()));
      await ops?.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
