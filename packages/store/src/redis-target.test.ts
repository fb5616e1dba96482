import { parseConfig } from '@reseq/config';
import { createLogger } from '@reseq/runtime';
import { describe, expect, it } from 'vitest';
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
