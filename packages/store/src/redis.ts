/**
 * Redis connections. Every app keeps blocking reads (XREAD/XREADGROUP BLOCK) on a connection of
 * their own, never shared with other commands, and checks the server version once at start.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@reseq/runtime';
import { RedisTooOldError } from './errors.js';
import { defineScripts, type ReseqRedis } from './scripts.js';

/** Options of {@link createRedis}. */
export interface CreateRedisOptions {
  url: string;
  /** Shown in CLIENT LIST as `reseq:<name>`, to tell connections apart with redis-cli. */
  name: string;
  logger: Logger;
  /**
   * `fail-fast`: commands fail at once while disconnected and are never re-sent (ingest: the
   * client gets a 503 and retries with its id). `wait`: commands wait for the reconnect and
   * are re-sent (workers, senders: every script they run is safe to run twice).
   */
  mode: 'fail-fast' | 'wait';
  /** Connection is used for blocking reads only. */
  blocking?: boolean;
}

/** Creates a connection with reseq's scripts defined on it. */
export function createRedis(options: CreateRedisOptions): ReseqRedis {
  const failFast = options.mode === 'fail-fast';
  const redisOptions: RedisOptions = {
    connectionName: `reseq:${options.name}`,
    maxRetriesPerRequest: failFast ? 0 : null,
    enableOfflineQueue: !failFast,
    autoResendUnfulfilledCommands: !failFast,
    // Reconnect forever, backing off to 2 s: Redis restarts and failovers are expected.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: true,
  };
  const redis = new Redis(options.url, redisOptions);
  const log = options.logger.child({ component: 'redis', connection: options.name });
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis emits one error per failed reconnect; log each distinct one once.
    if (err.message !== lastError) log.warn({ err: err.message }, 'redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    if (lastError) log.info('redis connection restored');
    lastError = '';
  });
  return defineScripts(redis);
}

/** Connects, and checks that the server is Redis 7.0 or newer. */
export async function connectRedis(redis: Redis): Promise<{ version: string }> {
  if (redis.status === 'wait') await redis.connect();
  const info = await redis.info('server');
  const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0.0.0';
  const [major = 0] = version.split('.').map(Number);
  if (major < 7) throw new RedisTooOldError(version);
  return { version };
}

/** Whether the connection can take commands now (for /readyz). */
export function isRedisReady(redis: Redis): boolean {
  return redis.status === 'ready';
}
