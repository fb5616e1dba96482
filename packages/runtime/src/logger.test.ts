import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, lazyChild, maskUrlPassword } from './logger.js';

const SECRETS = {
  webhook: 'whsec_c2VjcmV0LXdlYmhvb2sta2V5LWJ5dGVz',
  token: 'tok-ingest-0123456789abcdef',
  redisPassword: 'redis-pa55word',
  sentinelPassword: 'sentinel-pa55',
  bearer: 'Bearer receiver-credential-42',
  sourceRedisPassword: 'kue-pa55',
};

/** Logs `objects` through a real app logger and returns the raw output. */
async function logged(...objects: Record<string, unknown>[]): Promise<string> {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const logger = createLogger({ app: 'test', destination: stream });
  for (const object of objects) logger.child({ component: 'c' }).info(object, 'line');
  logger.flush();
  await new Promise((resolve) => setImmediate(resolve));
  return Buffer.concat(chunks).toString('utf8');
}

describe('logger redaction', () => {
  it('keeps secrets of a whole config, env and request out of the output', async () => {
    const config = {
      env: {
        REDIS_URL: `rediss://reseq:${SECRETS.redisPassword}@redis.internal:6380/0`,
        REDIS_SENTINEL_PASSWORD: SECRETS.sentinelPassword,
        RESEQ_PREFIX: 'reseq',
      },
      destinations: {
        billing: {
          type: 'http',
          url: 'https://billing.example/in',
          secret: SECRETS.webhook,
          headers: { Authorization: SECRETS.bearer },
        },
      },
      ingest: { tokens: { shop: SECRETS.token } },
      sources: [{ type: 'kue', redis: `redis://:${SECRETS.sourceRedisPassword}@queues:6379`, job: 'x' }],
    };
    const output = await logged(
      { config },
      config,
      { destination: config.destinations.billing },
      { redisUrl: config.env.REDIS_URL, sentinelPassword: SECRETS.sentinelPassword },
      { req: { headers: { authorization: SECRETS.bearer } } },
      { headers: { Authorization: SECRETS.bearer } },
      { line: { auth: SECRETS.token }, token: SECRETS.token },
    );
    for (const secret of Object.values(SECRETS)) expect(output).not.toContain(secret);
    expect(output).not.toContain('receiver-credential');
    // What helps an operator stays: hosts, names, the destination URL.
    expect(output).toContain('rediss://reseq:[redacted]@redis.internal:6380/0');
    expect(output).toContain('https://billing.example/in');
    const lines = output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(7);
  });
});

describe('maskUrlPassword', () => {
  it.each([
    ['redis://user:pw@h:1/2', 'redis://user:[redacted]@h:1/2'],
    ['rediss://:pw@h', 'rediss://:[redacted]@h'],
    ['redis://pw@h', 'redis://[redacted]@h'],
    ['redis://h:6379', 'redis://h:6379'],
    ['/v1/messages', '/v1/messages'],
    ['https://a.example/x?q=a@b', 'https://a.example/x?q=a@b'],
  ])('%s → %s', (url, masked) => {
    expect(maskUrlPassword(url)).toBe(masked);
  });
});

describe('lazyChild', () => {
  it('makes the child only when something logs, and then logs with its bindings, redacted', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const parent = createLogger({ app: 'test', destination: stream });
    let made = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => {
      made++;
      return child(...args);
    }) as typeof parent.child;

    const quiet = lazyChild(parent, { reqId: 'req-1' });
    expect(typeof quiet.info).toBe('function');
    expect(quiet.level).toBe('info');
    quiet.debug('below the level');
    expect(made).toBe(1); // a call makes it, even one below the level
    const unused = lazyChild(parent, { reqId: 'req-2' });
    expect(typeof unused.warn).toBe('function');
    expect(made).toBe(1);

    lazyChild(parent, { reqId: 'req-3' }).warn({ password: 'hunter2' }, 'logged');
    parent.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = Buffer.concat(chunks)
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ reqId: 'req-3', msg: 'logged', password: '[redacted]' })]);
  });
});
