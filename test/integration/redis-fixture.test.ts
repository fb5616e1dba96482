import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startRedis, uniquePrefix, type TestRedis } from '../fixtures/redis.js';

/** A client that fails at once instead of retrying, so a dead server shows up as an error. */
function connect(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  client.on('error', () => {
    // Expected after kill(); the assertions look at the command's rejection.
  });
  return client;
}

function majorMinor(info: string): [number, number] {
  const match = /^redis_version:(\d+)\.(\d+)/m.exec(info);
  if (!match) throw new Error(`no redis_version in INFO:\n${info}`);
  return [Number(match[1]), Number(match[2])];
}

describe('redis fixture', () => {
  const started: TestRedis[] = [];
  const clients: Redis[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });

  it('shares one Redis for the run through inject() and the environment', async () => {
    const url = inject('redisUrl');
    expect(url).toMatch(/^redis:\/\//);
    expect(new URL(url).port).not.toBe('6379');
    expect(process.env.RESEQ_TEST_REDIS_URL).toBe(url);
    const client = connect(url);
    clients.push(client);
    await client.connect();
    expect(await client.ping()).toBe('PONG');
  });

  it('starts a Redis >= 7.0 that answers PING, and kill() takes it down', async () => {
    const redis = await startRedis();
    started.push(redis);
    expect(redis.port).not.toBe(6379);
    expect(redis.url).toBe(`redis://${redis.host}:${redis.port}`);

    const client = connect(redis.url);
    clients.push(client);
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    const [major, minor] = majorMinor(await client.info('server'));
    expect(major * 100 + minor).toBeGreaterThanOrEqual(700);

    await redis.kill();
    await expect(client.ping()).rejects.toThrow();
    const fresh = connect(redis.url);
    clients.push(fresh);
    await expect(fresh.connect()).rejects.toThrow();
  });

  it('keeps acknowledged writes across kill() and restart() with appendonly', async () => {
    const redis = await startRedis({ appendonly: true });
    started.push(redis);
    const key = `${uniquePrefix('fixture restart')}:k`;
    const before = connect(redis.url);
    clients.push(before);
    await before.connect();
    await before.set(key, 'v');

    await redis.kill();
    await redis.restart();

    const after = connect(redis.url);
    clients.push(after);
    await after.connect();
    expect(await after.get(key)).toBe('v');
  });

  it('gives each test a prefix of its own', () => {
    const a = uniquePrefix('Some Test: name');
    expect(a).toMatch(/^t-some-test-name-[0-9a-f]{8}$/);
    expect(uniquePrefix('Some Test: name')).not.toBe(a);
  });
});
