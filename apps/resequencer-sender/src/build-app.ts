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
import { checkShardLayout, connectRedis, createRedis, isRedisReady, redisTarget, Shards } from '@reseq/store';
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
  const target = redisTarget(config.env);
  const shards = new Shards(config.env.RESEQ_PREFIX, config.env.RESEQ_SHARDS);
  const redis = createRedis({ target, name: `sender:${senderId}`, logger, mode: 'wait' });
  await connectRedis(redis);
  await checkShardLayout(redis, shards, { record: true });
  // A blocking XREAD holds its connection: one per shard, each shard's read waits alone.
  const blocking = shards.all.map((keys) =>
    createRedis({
      target,
      name: shards.count === 1 ? `sender:${senderId}:read` : `sender:${senderId}:read:${keys.shard}`,
      logger,
      mode: 'wait',
    }),
  );
  for (const connection of blocking) await connectRedis(connection);
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
