/**
 * Redis connections. Every app keeps blocking reads (XREAD/XREADGROUP BLOCK) on a connection of
 * their own, never shared with other commands, and checks the server version once at start.
 * Where sentinels are configured, each connection asks them for the master, and again after
 * every disconnect or READONLY answer (a failover). Where cluster nodes are configured, each
 * "connection" is a Cluster client (cluster.ts): one connection per master it talks to, a
 * blocking one included, so blocking reads still never share a connection with other commands.
 */
import type { EnvConfig, HostPort } from '@reseq/config';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@reseq/runtime';
import { clusterOf, createClusterClient, masterConnections } from './cluster.js';
import { RedisTooOldError } from './errors.js';
import { setWaitPolicy, waitPolicy, type WaitPolicy } from './replication.js';
import { defineScripts, type ReseqRedis } from './scripts.js';

/** Where the Redis holding reseq's state is, and how its writes are confirmed. */
export interface RedisTarget {
  /** `redis://` or `rediss://` URL: its user, password, TLS and database always apply. */
  url: string;
  /** Where set, the master is found through these sentinels instead of the URL's host and port. */
  sentinel?: {
    nodes: readonly HostPort[];
    /** The master's name in the sentinels' configuration. */
    name: string;
    password?: string;
  };
  /**
   * Where set, a Redis Cluster found through these seed nodes, instead of the URL's host and
   * port (never together with `sentinel`).
   */
  cluster?: { nodes: readonly HostPort[] };
  /** Replicas that must confirm each write that counts, and for how long to wait for them. */
  wait: WaitPolicy;
}

/**
 * The {@link RedisTarget} the environment describes (REDIS_URL, REDIS_SENTINELS,
 * REDIS_CLUSTER_NODES, RESEQ_WAIT_*).
 */
export function redisTarget(env: EnvConfig): RedisTarget {
  return {
    url: env.REDIS_URL,
    sentinel:
      env.REDIS_SENTINELS && env.REDIS_SENTINELS.length > 0
        ? {
            nodes: env.REDIS_SENTINELS,
            name: env.REDIS_SENTINEL_NAME,
            ...(env.REDIS_SENTINEL_PASSWORD === undefined ? {} : { password: env.REDIS_SENTINEL_PASSWORD }),
          }
        : undefined,
    cluster:
      env.REDIS_CLUSTER_NODES && env.REDIS_CLUSTER_NODES.length > 0 ? { nodes: env.REDIS_CLUSTER_NODES } : undefined,
    wait: { replicas: env.RESEQ_WAIT_REPLICAS, timeoutMs: env.RESEQ_WAIT_TIMEOUT_MS },
  };
}

const NO_WAIT: WaitPolicy = { replicas: 0, timeoutMs: 0 };

/** Options of {@link createRedis}. */
export interface CreateRedisOptions {
  /** Where to connect and how writes are confirmed; takes precedence over `url`. */
  target?: RedisTarget;
  /** A plain URL, with no sentinels and no write confirmation (tests, tools). */
  url?: string;
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

/** The URL's credentials, TLS and database, as ioredis options for a sentinel-found master. */
function sentinelOptions(url: string, sentinel: NonNullable<RedisTarget['sentinel']>): RedisOptions {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:';
  const db = Number(parsed.pathname.slice(1) || parsed.searchParams.get('db') || 0);
  return {
    sentinels: sentinel.nodes.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    role: 'master',
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    // rediss://: TLS to the master and to the sentinels alike.
    ...(tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
  };
}

/**
 * Creates a connection with reseq's scripts defined on it and, where the target asks for it,
 * the wait policy that store operations confirm their writes with. For a cluster target it is a
 * Cluster client, typed as the stores expect (see cluster.ts).
 * @throws Error when neither `target` nor `url` is given, when a target has both sentinels and
 *   cluster nodes, or when a cluster target's URL names a database other than 0.
 */
export function createRedis(options: CreateRedisOptions): ReseqRedis {
  const target = options.target ?? (options.url === undefined ? undefined : { url: options.url, wait: NO_WAIT });
  if (!target) throw new Error('createRedis needs a target or a url');
  const failFast = options.mode === 'fail-fast';
  const redisOptions: RedisOptions = {
    connectionName: `reseq:${options.name}`,
    maxRetriesPerRequest: failFast ? 0 : null,
    enableOfflineQueue: !failFast,
    autoResendUnfulfilledCommands: !failFast,
    // Reconnect forever, backing off to 2 s: Redis restarts and failovers are expected.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // A master demoted by a failover answers writes with READONLY while the connection lives:
    // reconnect (through the sentinels: to the new master). `wait` mode resends the command
    // (1: reject it, 2: resend it after the reconnect); fail-fast lets the caller retry.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? (failFast ? 1 : 2) : false),
    lazyConnect: true,
  };
  if (target.sentinel && target.cluster)
    throw new Error('createRedis: a target has sentinels or cluster nodes, not both');
  const redis = target.cluster
    ? (createClusterClient({
        url: target.url,
        nodes: target.cluster.nodes,
        connectionName: `reseq:${options.name}`,
        failFast,
      }) as unknown as Redis)
    : target.sentinel
      ? new Redis({ ...redisOptions, ...sentinelOptions(target.url, target.sentinel) })
      : new Redis(target.url, redisOptions);
  setWaitPolicy(redis, target.wait);
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
  // A node's connection failing (its master died) is not an error of the whole cluster.
  clusterOf(redis)?.on('node error', (err: Error, node: string) => {
    if (err.message !== lastError) log.warn({ err: err.message, node }, 'redis cluster node connection error');
    lastError = err.message;
  });
  return defineScripts(redis);
}

/**
 * Connects, and checks that the server is Redis 7.0 or newer: on a Cluster, every master (which
 * also opens the connection to each, so the first commands do not wait for it).
 * @returns the lowest version found.
 */
export async function connectRedis(redis: Redis): Promise<{ version: string }> {
  if (redis.status === 'wait') await redis.connect();
  let lowest: { version: string; major: number } | undefined;
  for (const connection of masterConnections(redis)) {
    const info = await connection.info('server');
    const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0.0.0';
    const [major = 0] = version.split('.').map(Number);
    if (lowest === undefined || major < lowest.major) lowest = { version, major };
  }
  if (!lowest) throw new Error('the Redis Cluster reported no master');
  if (lowest.major < 7) throw new RedisTooOldError(lowest.version);
  return { version: lowest.version };
}

/** Whether the connection can take commands now (for /readyz). */
export function isRedisReady(redis: Redis): boolean {
  return redis.status === 'ready';
}

/**
 * Whether every command sent so far on `redis` has left this process: the connection is a
 * single server's, ready, its socket holds nothing back in this process (all of it is in the
 * kernel's buffer, which the kernel still sends should the process be killed next), and its
 * writes need no replica's confirmation (no wait policy). The resequencer-sender then starts its
 * next delivery once the progress of the last one is sent, without waiting for the reply: a
 * crash of the sender cannot take that progress back. False on a Cluster (its node connections
 * are not tracked here) and wherever writes are confirmed by WAIT.
 */
export function writesLeftProcess(redis: Redis): boolean {
  if (clusterOf(redis) || waitPolicy(redis)) return false;
  return redis.status === 'ready' && redis.stream.writable && redis.stream.writableLength === 0;
}
