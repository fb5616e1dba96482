/**
 * How every app reaches its pipeline at start: the shard layout of RESEQ_SHARDS, its main
 * connection (connected, scripts defined, the recorded shard count checked), and for the apps
 * that block on reads, one more connection per shard (a blocking read holds its connection, so
 * each shard's read waits alone).
 */
import type { EnvConfig } from '@reseq/config';
import type { Logger } from '@reseq/runtime';
import { connectRedis, createRedis, redisTarget, type CreateRedisOptions } from './redis.js';
import type { ReseqRedis } from './scripts.js';
import { checkShardLayout } from './shard-layout.js';
import { Shards } from './shards.js';

/** An app's connections to its pipeline. */
export interface PipelineConnections {
  shards: Shards;
  redis: ReseqRedis;
  /** One per shard, in `shards.all` order; empty unless asked for. */
  blocking: ReseqRedis[];
}

/** Options of {@link connectPipeline}. */
export interface ConnectPipelineOptions {
  /** Connection name (CLIENT LIST `reseq:<name>`); blocking ones add `:read` (and `:<shard>`). */
  name: string;
  logger: Logger;
  mode: CreateRedisOptions['mode'];
  /** Open a blocking-read connection per shard. */
  blockingReads?: boolean;
}

/** Connects an app to its pipeline and records (or checks) the shard count. */
export async function connectPipeline(env: EnvConfig, options: ConnectPipelineOptions): Promise<PipelineConnections> {
  const { name, logger, mode } = options;
  const target = redisTarget(env);
  const shards = new Shards(env.RESEQ_PREFIX, env.RESEQ_SHARDS);
  const redis = createRedis({ target, name, logger, mode });
  await connectRedis(redis);
  await checkShardLayout(redis, shards, { record: true });
  const blocking = options.blockingReads
    ? shards.all.map((keys) =>
        createRedis({
          target,
          name: shards.count === 1 ? `${name}:read` : `${name}:read:${keys.shard}`,
          logger,
          mode,
        }),
      )
    : [];
  for (const connection of blocking) await connectRedis(connection);
  return { shards, redis, blocking };
}
