import { parseConfig } from '@reseq/config';
import { createLogger } from '@reseq/runtime';
import { describe, expect, it } from 'vitest';
import { clusterOf } from './cluster.js';
import { RedisUnavailableError, toStoreError } from './errors.js';
import { createRedis, redisTarget } from './redis.js';
import { waitPolicy } from './replication.js';

const logger = createLogger({ app: 'test', level: 'silent' });

describe('redisTarget', () => {
  it('is the plain REDIS_URL, confirming nothing, by default', () => {
    const target = redisTarget(parseConfig({}, {}).env);
    expect(target).toEqual({
      url: 'redis://127.0.0.1:6379',
      sentinel: undefined,
      wait: { replicas: 0, timeoutMs: 2000 },
    });
  });

  it('reads the sentinels, the master name and the WAIT settings', () => {
    const env = parseConfig(
      {
        REDIS_SENTINELS: 's1:26379, [::1]:26380',
        REDIS_SENTINEL_NAME: 'pipeline',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
        RESEQ_WAIT_REPLICAS: '2',
        RESEQ_WAIT_TIMEOUT_MS: '750',
      },
      {},
    ).env;
    expect(redisTarget(env)).toMatchObject({
      sentinel: {
        nodes: [
          { host: 's1', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        name: 'pipeline',
        password: 'sentinel-secret',
      },
      wait: { replicas: 2, timeoutMs: 750 },
    });
  });

  it('rejects every malformed sentinel address, and bad WAIT settings', () => {
    expect(() =>
      parseConfig(
        { REDIS_SENTINELS: 's1:26379,s2,s3:0,:1', RESEQ_WAIT_REPLICAS: '-1', RESEQ_WAIT_TIMEOUT_MS: '0' },
        {},
      ),
    ).toThrow(
      expect.objectContaining({
        problems: [
          'env REDIS_SENTINELS: "s2" is not host:port (port 1-65535)',
          'env REDIS_SENTINELS: "s3:0" is not host:port (port 1-65535)',
          'env REDIS_SENTINELS: ":1" is not host:port (port 1-65535)',
          expect.stringMatching(/^env RESEQ_WAIT_REPLICAS: /),
          expect.stringMatching(/^env RESEQ_WAIT_TIMEOUT_MS: /),
        ],
      }),
    );
  });
});

describe('createRedis', () => {
  it('connects through the sentinels with the URL credentials, database and TLS', () => {
    const env = parseConfig(
      {
        REDIS_URL: 'rediss://app:p%40ss@ignored-host:1234/3',
        REDIS_SENTINELS: 's1:26379',
        RESEQ_WAIT_REPLICAS: '1',
      },
      {},
    ).env;
    const redis = createRedis({ target: redisTarget(env), name: 'test', logger, mode: 'wait' });
    try {
      expect(redis.options).toMatchObject({
        sentinels: [{ host: 's1', port: 26379 }],
        name: 'mymaster',
        role: 'master',
        username: 'app',
        password: 'p@ss',
        db: 3,
        tls: {},
        enableTLSForSentinelMode: true,
        connectionName: 'reseq:test',
      });
      expect(waitPolicy(redis)).toEqual({ replicas: 1, timeoutMs: 2000 });
    } finally {
      redis.disconnect();
    }
  });

  it('sets no wait policy without RESEQ_WAIT_REPLICAS, nor for a bare url', () => {
    const fromEnv = createRedis({ target: redisTarget(parseConfig({}, {}).env), name: 'a', logger, mode: 'wait' });
    const fromUrl = createRedis({ url: 'redis://127.0.0.1:1', name: 'b', logger, mode: 'fail-fast' });
    try {
      expect(waitPolicy(fromEnv)).toBeUndefined();
      expect(waitPolicy(fromUrl)).toBeUndefined();
      expect(fromEnv.options.sentinels).toBeFalsy();
    } finally {
      fromEnv.disconnect();
      fromUrl.disconnect();
    }
  });
});

describe('Redis Cluster targets', () => {
  const clusterEnv = (extra: Record<string, string> = {}) =>
    parseConfig({ REDIS_CLUSTER_NODES: 'n1:7000,[::1]:7001', ...extra }, {}).env;

  it('reads the seed nodes into the target', () => {
    expect(redisTarget(clusterEnv())).toMatchObject({
      url: 'redis://127.0.0.1:6379',
      sentinel: undefined,
      cluster: {
        nodes: [
          { host: 'n1', port: 7000 },
          { host: '::1', port: 7001 },
        ],
      },
    });
    expect(redisTarget(parseConfig({}, {}).env).cluster).toBeUndefined();
  });

  it("builds a Cluster client with REDIS_URL's user, password and TLS on every node, reads on masters", () => {
    const env = clusterEnv({ REDIS_URL: 'rediss://app:p%40ss@ignored-host:1234', RESEQ_WAIT_REPLICAS: '1' });
    const redis = createRedis({ target: redisTarget(env), name: 'test', logger, mode: 'wait' });
    try {
      const cluster = clusterOf(redis);
      expect(cluster).toBeDefined();
      expect(cluster!.options).toMatchObject({
        scaleReads: 'master',
        enableOfflineQueue: true,
        lazyConnect: true,
        redisOptions: { connectionName: 'reseq:test', username: 'app', password: 'p@ss', tls: {} },
      });
      expect(cluster!.options.redisOptions).not.toHaveProperty('db');
      expect(waitPolicy(redis)).toEqual({ replicas: 1, timeoutMs: 2000 });
      expect(redis.status).toBe('wait');
    } finally {
      redis.disconnect();
    }
  });

  it('fails fast where the mode says so: no offline queue, no waiting out a failover', () => {
    const redis = createRedis({ target: redisTarget(clusterEnv()), name: 'ingest', logger, mode: 'fail-fast' });
    try {
      expect(clusterOf(redis)!.options).toMatchObject({
        enableOfflineQueue: false,
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
      });
      expect(clusterOf(redis)!.options.redisOptions).not.toHaveProperty('tls');
    } finally {
      redis.disconnect();
    }
  });

  it('refuses a database other than 0, and sentinels beside cluster nodes', () => {
    const nodes = [{ host: 'n1', port: 7000 }];
    const wait = { replicas: 0, timeoutMs: 0 };
    expect(() =>
      createRedis({ target: { url: 'redis://h:1/2', cluster: { nodes }, wait }, name: 'a', logger, mode: 'wait' }),
    ).toThrow('a Redis Cluster has database 0 only; the URL names database 2');
    expect(() =>
      createRedis({
        target: { url: 'redis://h:1', cluster: { nodes }, sentinel: { nodes, name: 'm' }, wait },
        name: 'a',
        logger,
        mode: 'wait',
      }),
    ).toThrow('createRedis: a target has sentinels or cluster nodes, not both');
  });

  it('counts a MOVED or ASK that reached the caller as Redis being unavailable', () => {
    const moved = Object.assign(new Error('MOVED 12771 127.0.0.1:7002'), { name: 'ReplyError' });
    const ask = Object.assign(new Error('ASK 12771 127.0.0.1:7002'), { name: 'ReplyError' });
    const wrongType = Object.assign(new Error('WRONGTYPE Operation against a key'), { name: 'ReplyError' });
    expect(toStoreError(moved)).toBeInstanceOf(RedisUnavailableError);
    expect(toStoreError(ask)).toBeInstanceOf(RedisUnavailableError);
    expect(toStoreError(wrongType)).toBe(wrongType);
  });
});
