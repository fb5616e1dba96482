/**
 * The transform-worker app: loads the user's transform, connects to Redis (one connection for
 * commands, one reserved for blocking reads) and runs a {@link TransformWorker}.
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
import { connectRedis, createRedis, isRedisReady, KeySchema, redisTarget } from '@reseq/store';
import { loadTransform, type TransformFn } from './load-transform.js';
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
  const target = redisTarget(config.env);
  const redis = createRedis({ target, name: `worker:${consumer}`, logger, mode: 'wait' });
  const blocking = createRedis({ target, name: `worker:${consumer}:read`, logger, mode: 'wait' });
  await connectRedis(redis);
  await connectRedis(blocking);
  const { registry } = createMetrics('transform-worker');
  const keys = new KeySchema(config.env.RESEQ_PREFIX);
  registerInputBacklogMetrics(registry, redis, keys);
  const probe = startRoundTripProbe({ ping: () => redis.ping(), registry });
  const worker = new TransformWorker({
    config,
    logger,
    transform: fn,
    keys,
    redis,
    blocking,
    consumer,
    metrics: createWorkerMetrics(registry),
  });
  await worker.start();
  let ops: OpsServer | undefined;
  if (config.env.METRICS_PORT !== undefined) {
    ops = await startOpsServer({
      port: config.env.METRICS_PORT,
      registry,
      readiness: { redis: () => isRedisReady(redis), worker: () => worker.alive },
    });
  }
  return {
    async stop() {
      probe.stop();
      await worker.stop();
      await ops?.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
