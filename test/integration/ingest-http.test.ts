/**
 * The contract's HTTP ingest, against the real ingest process and a real Redis: 202 with
 * `{ id, sequences }`, client retries de-duplicated by `id`, every error status with its code,
 * bad requests changing nothing, 503 while Redis is down, the ops endpoints and SIGTERM.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AppProcess } from '../fixtures/apps.js';
import { waitFor } from '../fixtures/apps.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import {
  freePort,
  get,
  Harness,
  ingestUrl,
  KeepAliveConnection,
  post,
  range,
  type HttpAnswer,
  type RawResponse,
} from './helpers.js';

const NOWHERE = 'http://127.0.0.1:9/in';

/** What a bad request must leave untouched: the input stream and the sequence counters. */
async function snapshot(h: Harness): Promise<{ input: number; sequences: Record<string, string> }> {
  return { input: await h.redis.xlen(h.key('in')), sequences: await h.redis.hgetall(h.key('seq')) };
}

function expectError(reply: HttpAnswer, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body.code }, reply.text).toEqual({ status, code });
  expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  expect(typeof reply.body.message).toBe('string');
  expect((reply.body.message as string).length).toBeGreaterThan(0);
}

describe('ingest over HTTP', () => {
  let h: Harness;
  let ingest: AppProcess;
  let url: string;

  beforeAll(async () => {
    h = new Harness('ingest http', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE }, b: { type: 'http', url: NOWHERE } },
      ingest: { maxMessageBytes: 1024 },
    });
    ingest = await h.start('ingest', config);
    url = `${ingestUrl(ingest)}/v1/messages`;
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('answers 202 with the id and the sequence of each destination, in the order it answers', async () => {
    const first = await post(url, { destination: 'a', payload: { n: 1 } });
    expect(first.status, first.text).toBe(202);
    expect(first.body).toEqual({ id: expect.any(String) as unknown, sequences: { a: 1 } });
    expect((first.body.id as string).length).toBeGreaterThan(0);

    const second = await post(url, { destinations: ['a', 'b'], payload: [1, 2, 3], id: 'client-id-1' });
    expect(second.status, second.text).toBe(202);
    expect(second.body).toEqual({ id: 'client-id-1', sequences: { a: 2, b: 1 } });

    const third = await post(url, { destination: 'a', payload: null });
    expect(third.status, third.text).toBe(202);
    expect(third.body.sequences).toEqual({ a: 3 });
    // Ingest makes a new id for every message without one.
    expect(third.body.id).not.toBe(first.body.id);

    // One input entry per (message, destination); the counters are the last sequences given out.
    expect(await h.redis.xlen(h.key('in'))).toBe(4);
    expect(await h.redis.hgetall(h.key('seq'))).toEqual({ a: '3', b: '1' });

    // Concurrent requests for one destination get distinct sequences with no gaps.
    const replies = await Promise.all(range(1, 20).map((n) => post(url, { destination: 'b', payload: { n } })));
    expect(replies.map((r) => r.status)).toEqual(replies.map(() => 202));
    const given = replies.map((r) => (r.body.sequences as Record<string, number>).b!).sort((x, y) => x - y);
    expect(given).toEqual(range(2, 21));
  });

  it('answers a retried id with the same sequences and writes nothing more', async () => {
    const first = await post(url, { destinations: ['a', 'b'], payload: { v: 1 }, id: 'retry-me' });
    expect(first.status, first.text).toBe(202);
    const before = await snapshot(h);

    const again = await post(url, { destinations: ['a', 'b'], payload: { v: 1 }, id: 'retry-me' });
    expect(again.status, again.text).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(await snapshot(h)).toEqual(before);

    // Retries racing each other (a client with a short timeout) still add only one message.
    const racing = await Promise.all(
      range(1, 8).map(() => post(url, { destination: 'a', payload: { v: 2 }, id: 'racing-retry' })),
    );
    expect(racing.map((r) => r.status)).toEqual(racing.map(() => 202));
    expect(new Set(racing.map((r) => JSON.stringify(r.body))).size).toBe(1);
    const after = await snapshot(h);
    expect(after.input).toBe(before.input + 1);
    expect(Number(after.sequences.a)).toBe(Number(before.sequences.a) + 1);
  });

  it('answers 400 INGEST_MALFORMED_JSON to a body that is not JSON, and changes nothing', async () => {
    const before = await snapshot(h);
    for (const body of ['{"destination":"a","payload":', 'not json', '{"destination":"a" "payload":1}']) {
      expectError(await post(url, body), 400, 'INGEST_MALFORMED_JSON');
    }
    expect(await snapshot(h)).toEqual(before);
  });

  it('answers 400 INGEST_INVALID_BODY to JSON that is not a message, and changes nothing', async () => {
    const before = await snapshot(h);
    const invalid: unknown[] = [
      { destination: 'a' }, // no payload
      { payload: 1 }, // no destination
      { destination: 'a', destinations: ['b'], payload: 1 }, // both
      { destinations: [], payload: 1 }, // empty list
      { destination: 'a', payload: 1, id: 42 }, // id not a string
      { destination: 7, payload: 1 },
      { destinations: 'a', payload: 1 },
      [{ destination: 'a', payload: 1 }],
      'null',
      '"a string"',
    ];
    for (const body of invalid) {
      const reply = await post(url, typeof body === 'string' ? body : JSON.stringify(body));
      expect({ body, status: reply.status, code: reply.body.code }).toEqual({
        body,
        status: 400,
        code: 'INGEST_INVALID_BODY',
      });
      expectError(reply, 400, 'INGEST_INVALID_BODY');
    }
    expect(await snapshot(h)).toEqual(before);
  });

  it('answers 404 INGEST_UNKNOWN_DESTINATION, writing nothing even for the known ones', async () => {
    const before = await snapshot(h);
    expectError(await post(url, { destination: 'nope', payload: 1 }), 404, 'INGEST_UNKNOWN_DESTINATION');
    expectError(
      await post(url, { destinations: ['a', 'nope'], payload: 1, id: 'unknown-1' }),
      404,
      'INGEST_UNKNOWN_DESTINATION',
    );
    expect(await snapshot(h)).toEqual(before);
    // The refused id was not remembered: sent correctly, it is a new message.
    const fixed = await post(url, { destinations: ['a'], payload: 1, id: 'unknown-1' });
    expect(fixed.status).toBe(202);
    expect(fixed.body.sequences).toEqual({ a: Number(before.sequences.a) + 1 });
  });

  it('answers 413 INGEST_PAYLOAD_TOO_LARGE over ingest.maxMessageBytes, and changes nothing', async () => {
    const before = await snapshot(h);
    expectError(
      await post(url, { destination: 'a', payload: 'x'.repeat(2000), id: 'big-1' }),
      413,
      'INGEST_PAYLOAD_TOO_LARGE',
    );
    expect(await snapshot(h)).toEqual(before);
    const small = await post(url, { destination: 'a', payload: 'x'.repeat(500) });
    expect(small.status).toBe(202);
  });

  it('answers unknown routes with a JSON error and serves /healthz and /readyz', async () => {
    const missing = await get(`${ingestUrl(ingest)}/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(typeof missing.body.code).toBe('string');
    expect(typeof missing.body.message).toBe('string');
    expect((await get(`${ingestUrl(ingest)}/healthz`)).status).toBe(200);
    expect((await get(`${ingestUrl(ingest)}/readyz`)).status).toBe(200);
  });
});

describe('ingest limits by default', () => {
  let h: Harness;
  afterEach(async () => {
    await h.cleanup();
  });

  it('takes a message just under 1 MiB and refuses one over it', async () => {
    h = new Harness('ingest default limit', inject('redisUrl'));
    const ingest = await h.start('ingest', await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } }));
    const url = `${ingestUrl(ingest)}/v1/messages`;
    const under = await post(url, { destination: 'a', payload: 'x'.repeat(1_000_000) });
    expect(under.status, under.text.slice(0, 200)).toBe(202);
    expectError(
      await post(url, { destination: 'a', payload: 'x'.repeat(1024 * 1024 + 1) }),
      413,
      'INGEST_PAYLOAD_TOO_LARGE',
    );
    expect(await h.redis.xlen(h.key('in'))).toBe(1);
  });
});

describe('ingest and its Redis', () => {
  let h: Harness;
  let redis: TestRedis | undefined;
  const connections: KeepAliveConnection[] = [];
  afterEach(async () => {
    for (const c of connections.splice(0)) c.close();
    await h.cleanup();
    await redis?.stop();
    redis = undefined;
  });

  it('answers 503 REDIS_UNAVAILABLE with Retry-After while Redis is down, 202 again once it is back', async () => {
    redis = await startRedis();
    h = new Harness('ingest redis down', redis.url);
    const metricsPort = await freePort();
    const ingest = await h.start('ingest', await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } }), {
      METRICS_PORT: String(metricsPort),
    });
    const base = ingestUrl(ingest);
    const ops = `http://127.0.0.1:${metricsPort}`;
    const url = `${base}/v1/messages`;

    expect((await post(url, { destination: 'a', payload: 1, id: 'before' })).status).toBe(202);
    expect((await get(`${ops}/readyz`)).status).toBe(200);
    expect((await get(`${ops}/healthz`)).status).toBe(200);
    const metrics = await get(`${ops}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^reseq_ingest_accepted_total\{[^}]*destination="a"[^}]*\} 1$/m);

    await redis.kill();
    await waitFor(async () => (await get(`${ops}/readyz`)).status === 503, 'readyz 503 while Redis is down', 10_000);
    expect((await get(`${base}/readyz`)).status).toBe(503);
    expect((await get(`${ops}/healthz`)).status).toBe(200);
    for (const body of [
      { destination: 'a', payload: 2, id: 'during' },
      { destination: 'a', payload: 3 },
    ]) {
      const started = Date.now();
      const reply = await post(url, body);
      expectError(reply, 503, 'REDIS_UNAVAILABLE');
      expect(Number(reply.headers.get('retry-after'))).toBeGreaterThan(0);
      // Fails fast: a client learns at once that it should retry.
      expect(Date.now() - started).toBeLessThan(2_000);
    }
    // Still a validation error (not a 503) for a request that could never succeed.
    expectError(await post(url, 'nope'), 400, 'INGEST_MALFORMED_JSON');

    await redis.restart();
    await waitFor(async () => (await get(`${ops}/readyz`)).status === 200, 'readyz 200 after the restart', 15_000);
    const retried = await post(url, { destination: 'a', payload: 2, id: 'during' });
    expect(retried.status, retried.text).toBe(202);
    expect(retried.body.id).toBe('during');
    expect(await h.redis.xlen(h.key('in'))).toBe(1);

    expect(await ingest.stop()).toBe(0);
  });

  it('on SIGTERM answers what it took, closes kept-alive connections, refuses the rest with a coded 503', async () => {
    redis = await startRedis();
    h = new Harness('ingest sigterm in flight', redis.url);
    const ingest = await h.start('ingest', await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } }));
    const admin = h.client(redis.url);
    const connection = await KeepAliveConnection.open(ingestUrl(ingest));
    connections.push(connection);
    const body = (id: string): string => JSON.stringify({ destination: 'a', payload: { id }, id });

    const warm = await connection.post('/v1/messages', body('m-0'));
    expect(warm !== 'closed' && warm.status).toBe(202);
    // Hold Redis for a moment so that a request is still being written when SIGTERM comes.
    await admin.call('CLIENT', 'PAUSE', '1000', 'ALL');
    setTimeout(() => ingest.child.kill('SIGTERM'), 300);
    const signalled = Date.now();
    const answers: (RawResponse | 'closed')[] = [];
    // A client that sends its next request as soon as the last was answered, on one connection.
    for (let n = 1; n <= 5 && !connection.closed; n++)
      answers.push(await connection.post('/v1/messages', body(`m-${n}`)));

    expect(await ingest.exited).toBe(0);
    // It does not wait for the client to let go of its idle connection (keep-alive: 72 s).
    expect(Date.now() - signalled).toBeLessThan(5_000);
    const [inFlight, ...after] = answers;
    expect(inFlight !== 'closed' && inFlight?.status, JSON.stringify(answers)).toBe(202);
    for (const answer of after) {
      // Unanswered is a lost connection, which a client retries; an answer is the contract's retryable 503.
      if (answer === 'closed') continue;
      expect(answer.status, JSON.stringify(answer)).toBe(503);
      expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
      const error = JSON.parse(answer.body) as Record<string, unknown>;
      expect(typeof error.code, answer.body).toBe('string');
      expect(typeof error.message).toBe('string');
    }
    const ids = (await admin.xrange(h.key('in'), '-', '+')).map(([, fields]) => fields[fields.indexOf('m') + 1]);
    expect(ids).toEqual(['m-0', 'm-1']);
  });

  it('on SIGTERM does not wait for a client to let go of a kept-alive connection', async () => {
    redis = await startRedis();
    h = new Harness('ingest sigterm keep-alive', redis.url);
    const ingest = await h.start('ingest', await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } }));
    const connection = await KeepAliveConnection.open(ingestUrl(ingest));
    connections.push(connection);
    await h.client(redis.url).call('CLIENT', 'PAUSE', '1000', 'ALL');
    setTimeout(() => ingest.child.kill('SIGTERM'), 300);
    const signalled = Date.now();
    const answer = await connection.post('/v1/messages', JSON.stringify({ destination: 'a', payload: 1, id: 'k-1' }));
    expect(answer !== 'closed' && answer.status).toBe(202);
    // The client keeps its connection open (its pool would, for the keep-alive timeout).
    expect(await Promise.race([ingest.exited, sleep(6_000).then(() => 'still running')])).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5_000);
  });

  it('exits 0 on SIGTERM, also while Redis is down', async () => {
    redis = await startRedis();
    h = new Harness('ingest sigterm', redis.url);
    const config = await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } });
    const first = await h.start('ingest', config);
    await h.send(first, { destination: 'a', payload: 1 });
    expect(await first.stop()).toBe(0);
    expect(first.logs.some((l) => l.msg === 'stopped')).toBe(true);

    const second = await h.start('ingest', config);
    await redis.kill();
    expect(await second.stop()).toBe(0);
  });
});

describe('ingest backpressure per destination', () => {
  it('answers 429 DESTINATION_BACKLOG_FULL with Retry-After for a destination at its window, while others flow', async () => {
    const h = new Harness('ingest window', inject('redisUrl'));
    try {
      // No sender runs: nothing is ever delivered, so destination a fills its window of 3.
      const config = await h.config({
        destinations: { a: { type: 'http', url: NOWHERE }, b: { type: 'http', url: NOWHERE } },
        ingest: { destinationWindow: 3 },
      });
      const ingest = await h.start('ingest', config);
      const url = `${ingestUrl(ingest)}/v1/messages`;
      for (const n of [1, 2, 3]) expect((await post(url, { destination: 'a', payload: { n } })).status).toBe(202);
      const before = await snapshot(h);

      const refused = await post(url, { destination: 'a', payload: { n: 4 }, id: 'retry-me' });
      expectError(refused, 429, 'DESTINATION_BACKLOG_FULL');
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await snapshot(h)).toEqual(before);

      // The other destination is not held back.
      const other = await post(url, { destination: 'b', payload: { n: 1 } });
      expect(other.status, other.text).toBe(202);

      // Once a's delivered position moves (a sender delivered one), the retry with the same id is accepted.
      await h.redis.hset(h.key('pos'), 'a', 1);
      const retried = await post(url, { destination: 'a', payload: { n: 4 }, id: 'retry-me' });
      expect(retried.status, retried.text).toBe(202);
      expect(retried.body.sequences).toEqual({ a: 4 });
    } finally {
      await h.cleanup();
    }
  });
});
