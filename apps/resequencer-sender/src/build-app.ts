/**
 * The resequencer-sender app: connects to Redis (commands, and a connection reserved for the
 * blocking result reads per shard), creates a delivery adapter per destination and runs a
 * {@link ResequencerSender}.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { ReseqConfig } from '@reseq/config';
import { createDelivery } from '@reseq/delivery';
import {
  createMetrics,
  startOpsServer,
  startRoundTripProbe,
  type Logger,
  type OpsServer,
  type RunningApp,
} from '@reseq/runtime';
import { connectPipeline, isRedisReady } from '@reseq/store';
import { ResequencerSender } from './sender.js';
import { createSenderMetrics, registerBacklogMetrics } from './sender-metrics.js';
import { StatusAuth, statusRoutes } from './status-page.js';
import { StatusSampler } from './status-sampler.js';

/** Options of {@link buildSender}. */
export interface SenderOptions {
  config: ReseqConfig;
  logger: Logger;
}

/** Starts a resequencer-sender. */
export async function buildSender({ config, logger }: SenderOptions): Promise<RunningApp> {
  const senderId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const { shards, redis, blocking } = await connectPipeline(config.env, {
    name: `sender:${senderId}`,
    logger,
    mode: 'wait',
    blockingReads: true,
  });
  const deliveries = new Map(Object.entries(config.destinations).map(([name, d]) => [name, createDelivery(d)]));
  const { registry } = createMetrics('resequencer-sender');
  const metrics = createSenderMetrics(registry);
  registerBacklogMetrics(registry, redis, shards, Object.keys(config.destinations));
  const probe = startRoundTripProbe({ ping: () => redis.ping(), registry });
  const sender = new ResequencerSender({ config, logger, shards, redis, blocking, senderId, deliveries, metrics });
  await sender.start();
  let ops: OpsServer | undefined;
  let sampler: StatusSampler | undefined;
  if (config.env.METRICS_PORT !== undefined) {
    // The status page rides on the ops server, so it exists exactly where /metrics does.
    sampler = new StatusSampler({
      redis,
      shards,
      configured: Object.keys(config.destinations),
      senderId,
      endToEnd: metrics.endToEnd,
      logger: logger.child({ component: 'status-page' }),
    });
    sampler.start();
    ops = await startOpsServer({
      port: config.env.METRICS_PORT,
      registry,
      readiness: { redis: () => isRedisReady(redis), leases: () => sender.alive },
      routes: statusRoutes(sampler, new StatusAuth(config.ingest.tokens)),
    });
  }
  return {
    async stop() {
      probe.stop();
      await sampler?.stop();
      await sender.stop();
      await Promise.all([...deliveries.values()].map((d) => d.close()));
      await ops?.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
