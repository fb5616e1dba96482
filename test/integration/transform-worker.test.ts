/**
 * The transform stage through real processes (ingest, transform-worker, resequencer-sender, an
 * HTTP sink): retries, dead letters under both policies, dropped messages, SIGTERM with
 * transforms in flight, and a SIGKILLed worker coming back under its consumer name.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import {
  deadLetters,
  everyEntryTaken,
  expectDelivered,
  freePort,
  get,
  Harness,
  metricValue,
  pipelineConfig,
  range,
  sequences,
  TEST_TRANSFORM,
  type TestDestination,
} from './helpers.js';

/** A worker with the test transform and an ops port to watch its transforms in flight. */
async function startWorker(
  h: Harness,
  config: string,
  env: Record<string, string> = {},
): Promise<{ app: AppProcess; metricsPort: number }> {
  const metricsPort = await freePort();
  const app = await h.start('transform-worker', config, {
    TRANSFORM_MODULE: TEST_TRANSFORM,
    RESEQ_TEST_MAX_DELAY_MS: '20',
    METRICS_PORT: String(metricsPort),
    ...env,
  });
  return { app, metricsPort };
}

describe('transform-worker', () => {
  let h: Harness;
  let redis: TestRedis | undefined;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
    await redis?.stop();
    redis = undefined;
  });

  async function pipeline(
    name: string,
    destinations: Record<string, Omit<TestDestination, 'url'>>,
    overrides: Parameters<typeof pipelineConfig>[1] = {},
  ): Promise<{ sinks: Record<string, HttpSink>; config: string; ingest: AppProcess }> {
    h = new Harness(name, inject('redisUrl'));
    const sinks: Record<string, HttpSink> = {};
    for (const d of Object.keys(destinations)) sinks[d] = await h.sink();
    const config = await h.config(
      pipelineConfig(
        Object.fromEntries(Object.entries(destinations).map(([d, o]) => [d, { ...o, url: sinks[d]!.url }])),
        overrides,
      ),
    );
    const ingest = await h.start('ingest', config);
    return { sinks, config, ingest };
  }

  it('retries a transform that throws, then delivers its result once', async () => {
    const { sinks, config, ingest } = await pipeline('worker retry', { a: {} });
    await startWorker(h, config);
    await h.start('resequencer-sender', config);
    const sink = sinks.a!;

    const flaky = await h.send(ingest, { destination: 'a', payload: { n: 1, fail: 2 }, id: 'flaky-1' });
    for (let n = 2; n <= 5; n++) await h.send(ingest, { destination: 'a', payload: { n } });
    await waitFor(() => sink.unique().length >= 5, 'five deliveries');
    await sleep(300);

    expectDelivered(sink, range(1, 5));
    // Retried inside the transform stage: the destination got it exactly once.
    expect(sink.received).toHaveLength(5);
    const first = sink.received[0]!;
    expect(first.messageId).toBe('flaky-1');
    expect(flaky.sequences).toEqual({ a: 1 });
    expect(first.body).toEqual({ n: 1, fail: 2, transformed: true, destination: 'a', sequence: 1 });
    expect(sink.received.map((d) => (d.body as { n: number }).n)).toEqual(range(1, 5));
    expect(await deadLetters(h)).toEqual([]);
  });

  it('dead-letters a poison message and a message out of attempts; "skip" moves on, "block" waits', async () => {
    const { sinks, config, ingest } = await pipeline(
      'worker dead letters',
      { skipper: { onDeadLetter: 'skip' }, blocker: {} },
      { transform: { maxAttempts: 3, retry: { baseMs: 10, maxMs: 50 } } },
    );
    await startWorker(h, config);
    await h.start('resequencer-sender', config);
    const both = ['skipper', 'blocker'];

    await h.send(ingest, { destinations: both, payload: { n: 1 } });
    await h.send(ingest, { destinations: both, payload: { n: 2, poison: true }, id: 'poison-2' });
    await h.send(ingest, { destinations: both, payload: { n: 3 } });
    await h.send(ingest, { destination: 'skipper', payload: { n: 4, fail: 100 }, id: 'tired-4' });
    await h.send(ingest, { destinations: both, payload: { n: 5 } });

    // skipper: 1..5 are its sequences 1..5; 2 and 4 are dead letters it skips.
    await waitFor(() => sinks.skipper!.unique().length >= 3, 'the skip destination to get 1, 3 and 5');
    // blocker: 1, 2 (poison), 3, 4 (= message 5); it stops at 2.
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'blocker')) === '2', 'blocker blocked at 2');
    await sleep(1_500);

    expectDelivered(sinks.skipper!, [1, 3, 5]);
    expect(sinks.skipper!.unique().map((d) => (d.body as { n: number }).n)).toEqual([1, 3, 5]);
    expectDelivered(sinks.blocker!, [1]);
    expect(await h.redis.hget(h.key('blocked'), 'skipper')).toBeNull();
    expect(await h.redis.hget(h.key('blocked'), 'blocker')).toBe('2');

    const letters = await deadLetters(h);
    const byKey = new Map(letters.map((l) => [`${l.d}:${l.s}`, l]));
    expect([...byKey.keys()].sort()).toEqual(['blocker:2', 'skipper:2', 'skipper:4']);
    for (const key of ['blocker:2', 'skipper:2']) {
      const letter = byKey.get(key)!;
      expect(letter.m).toBe('poison-2');
      expect(JSON.parse(letter.p!)).toEqual({ n: 2, poison: true });
      // permanent: no retry.
      expect(letter.a).toBe('1');
      expect(letter.e).toMatch(/poison message/);
    }
    const tired = byKey.get('skipper:4')!;
    expect(tired.m).toBe('tired-4');
    expect(JSON.parse(tired.p!)).toEqual({ n: 4, fail: 100 });
    expect(tired.a).toBe('3');
    expect(tired.e).toMatch(/flaky, attempt 3/);
  });

  it('delivers nothing for a dropped message; the next one comes with the next sequence', async () => {
    const { sinks, config, ingest } = await pipeline('worker drop', { a: {} });
    await startWorker(h, config);
    await h.start('resequencer-sender', config);

    await h.send(ingest, { destination: 'a', payload: { n: 1 } });
    await h.send(ingest, { destination: 'a', payload: { n: 2, drop: true } });
    await h.send(ingest, { destination: 'a', payload: { n: 3 } });
    await h.send(ingest, { destination: 'a', payload: { n: 4, drop: true } });
    await h.send(ingest, { destination: 'a', payload: { n: 5, drop: true } });
    await h.send(ingest, { destination: 'a', payload: { n: 6 } });
    await waitFor(() => sinks.a!.unique().length >= 3, 'three deliveries');
    await sleep(300);

    expectDelivered(sinks.a!, [1, 3, 6]);
    expect(sinks.a!.received.map((d) => (d.body as { n: number }).n)).toEqual([1, 3, 6]);
    expect(await deadLetters(h)).toEqual([]);
  });

  it('never runs more than WORKER_CONCURRENCY fast transforms at once, reading ahead, and delivers all in order', async () => {
    const count = 150;
    const { sinks, config, ingest } = await pipeline('worker concurrency', { a: {}, b: {} });
    const probe = join(dirname(config), 'most-in-flight');
    // Transforms of 0-4 ms: fast enough for the worker to read its next batch while they run, and
    // to free each slot before the outcome of its transform is written.
    await startWorker(h, config, {
      TRANSFORM_MODULE: resolve(import.meta.dirname, '../fixtures/transforms/concurrency-probe.mjs'),
      RESEQ_TEST_MAX_DELAY_MS: '4',
      RESEQ_TEST_PROBE_FILE: probe,
      WORKER_CONCURRENCY: '4',
    });
    await h.start('resequencer-sender', config);
    for (let n = 1; n <= count; n++) await h.send(ingest, { destinations: ['a', 'b'], payload: { n } });

    await waitFor(
      () => sinks.a!.unique().length >= count && sinks.b!.unique().length >= count,
      'every message at both destinations',
      20_000,
    );
    expect(sinks.a!.received.map((d) => (d.body as { n: number }).n)).toEqual(range(1, count));
    expect(sinks.b!.received.map((d) => (d.body as { n: number }).n)).toEqual(range(1, count));
    // Four at once, never five.
    expect(Number(await readFile(probe, 'utf8'))).toBe(4);
    await waitFor(async () => (await h.redis.xlen(h.key('in'))) === 0, 'the input stream trimmed to nothing');
  });

  describe.each([
    { grace: 'long', shutdownGraceMs: 15_000 },
    { grace: 'short', shutdownGraceMs: 100 },
  ])('SIGTERM with transforms in flight ($grace grace)', ({ grace, shutdownGraceMs }) => {
    it('exits 0 and every message is still delivered in order, once', async () => {
      // Two destinations: 16 entries, as many as one worker runs at once (WORKER_CONCURRENCY).
      const count = 8;
      const { sinks, config, ingest } = await pipeline(
        `worker sigterm ${grace}`,
        { a: {}, b: {} },
        {
          worker: { claimIdleMs: 1_000, claimIntervalMs: 200, shutdownGraceMs },
        },
      );
      const slow = { RESEQ_TEST_MAX_DELAY_MS: '3000' };
      const first = await startWorker(h, config, slow);
      await h.start('resequencer-sender', config);

      for (let n = 1; n <= count; n++) await h.send(ingest, { destinations: ['a', 'b'], payload: { n } });
      // Every entry is now in the first worker's hands, most of them still running.
      await waitFor(async () => (await everyEntryTaken(h)).taken, 'the first worker to take every entry', 10_000);
      expect(await metricValue(first.metricsPort, 'reseq_transforms_in_flight')).toBeGreaterThan(0);
      const second = await startWorker(h, config, slow);

      const stopping = Date.now();
      expect(await first.app.stop()).toBe(0);
      const stoppedAfter = Date.now() - stopping;
      if (grace === 'short') {
        // Handed back instead of waiting for the transforms (up to 3 s each).
        expect(first.app.logs.some((l) => l.msg === 'handed unfinished entries back to the group')).toBe(true);
        expect(stoppedAfter).toBeLessThan(2_500);
      } else {
        expect(first.app.logs.some((l) => l.msg === 'handed unfinished entries back to the group')).toBe(false);
      }

      await waitFor(
        () => sinks.a!.unique().length >= count && sinks.b!.unique().length >= count,
        'every message at both destinations',
        20_000,
      );
      await sleep(500);
      expectDelivered(sinks.a!, range(1, count));
      expectDelivered(sinks.b!, range(1, count));
      expect(sinks.a!.unique().map((d) => (d.body as { n: number }).n)).toEqual(range(1, count));
      // Results of transforms run twice (finished late, and again by the peer) reach the
      // destination once: the sender was never disturbed, so nothing is redelivered.
      expect(sinks.a!.received).toHaveLength(count);
      expect(sinks.b!.received).toHaveLength(count);
      expect(second.app.child.exitCode).toBeNull();
      expect(await h.redis.xlen(h.key('in'))).toBe(0);
    });
  });

  it('finishes its transforms on SIGTERM within the grace period, with no peer to hand them to', async () => {
    const count = 8;
    const { sinks, config, ingest } = await pipeline(
      'worker sigterm alone',
      { a: {} },
      {
        worker: { claimIdleMs: 60_000, claimIntervalMs: 200, shutdownGraceMs: 15_000 },
      },
    );
    const worker = await startWorker(h, config, { RESEQ_TEST_MAX_DELAY_MS: '1500' });
    await h.start('resequencer-sender', config);
    for (let n = 1; n <= count; n++) await h.send(ingest, { destination: 'a', payload: { n } });
    await waitFor(async () => (await everyEntryTaken(h)).taken, 'the worker to take every entry', 10_000);
    expect(await metricValue(worker.metricsPort, 'reseq_transforms_in_flight')).toBeGreaterThan(0);
    expect(await worker.app.stop()).toBe(0);
    // No worker runs now: what arrives was finished by the stopped one.
    await waitFor(() => sinks.a!.unique().length >= count, 'every message', 10_000);
    expectDelivered(sinks.a!, range(1, count));
  });

  it('re-reads its own pending entries when restarted under the same RESEQ_CONSUMER_NAME after SIGKILL', async () => {
    const count = 8;
    // Take-over by idle time is far away: only re-reading its own entries can bring them back.
    const { sinks, config, ingest } = await pipeline(
      'worker restart',
      { a: {} },
      {
        worker: { claimIdleMs: 120_000, claimIntervalMs: 200, shutdownGraceMs: 10_000 },
      },
    );
    const env = { RESEQ_CONSUMER_NAME: 'worker-fixed', RESEQ_TEST_MAX_DELAY_MS: '3000' };
    const before = await startWorker(h, config, env);
    await h.start('resequencer-sender', config);
    for (let n = 1; n <= count; n++) await h.send(ingest, { destination: 'a', payload: { n } });
    await waitFor(async () => (await everyEntryTaken(h)).taken, 'the worker to take every entry', 10_000);
    expect(await metricValue(before.metricsPort, 'reseq_transforms_in_flight')).toBeGreaterThan(0);
    await before.app.kill();

    const { pending } = await everyEntryTaken(h);
    expect(pending['worker-fixed']).toBeGreaterThan(0);
    const delivered = sinks.a!.unique().length;
    expect(delivered).toBeLessThan(count);

    await startWorker(h, config, { RESEQ_CONSUMER_NAME: 'worker-fixed', RESEQ_TEST_MAX_DELAY_MS: '20' });
    await waitFor(() => sinks.a!.unique().length >= count, 'every message after the restart', 10_000);
    await sleep(300);
    expectDelivered(sinks.a!, range(1, count));
    expect(sinks.a!.received).toHaveLength(count);
    expect(await h.redis.xlen(h.key('in'))).toBe(0);
  });

  it('lets a peer take over the entries of a SIGKILLed worker after claimIdleMs', async () => {
    const count = 10;
    const { sinks, config, ingest } = await pipeline('worker takeover', { a: {} });
    const slow = { RESEQ_TEST_MAX_DELAY_MS: '3000' };
    const victim = await startWorker(h, config, slow);
    await h.start('resequencer-sender', config);
    for (let n = 1; n <= count; n++) await h.send(ingest, { destination: 'a', payload: { n } });
    await waitFor(async () => (await everyEntryTaken(h)).taken, 'the worker to take every entry', 10_000);
    expect(await metricValue(victim.metricsPort, 'reseq_transforms_in_flight')).toBeGreaterThan(0);
    await startWorker(h, config, { RESEQ_TEST_MAX_DELAY_MS: '20' });
    await victim.app.kill();
    await waitFor(() => sinks.a!.unique().length >= count, 'every message after the take-over', 15_000);
    await sleep(300);
    expectDelivered(sinks.a!, range(1, count));
    expect(sinks.a!.received).toHaveLength(count);
    expect(sequences(sinks.a!.received)).toEqual(range(1, count));
  });

  it('exits 0 on SIGTERM while Redis is down, once Redis is back', async () => {
    redis = await startRedis();
    h = new Harness('worker sigterm redis down', redis.url);
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ a: { url: sink.url } }));
    const ingest = await h.start('ingest', config);
    const worker = await startWorker(h, config);
    await h.start('resequencer-sender', config);
    await h.send(ingest, { destination: 'a', payload: { n: 1 } });
    await waitFor(() => sink.unique().length >= 1, 'the first delivery');

    const readyz = `http://127.0.0.1:${worker.metricsPort}/readyz`;
    expect((await get(readyz)).status).toBe(200);
    await redis.kill();
    await waitFor(async () => (await get(readyz)).status === 503, 'readyz 503 while Redis is down', 10_000);
    expect((await get(`http://127.0.0.1:${worker.metricsPort}/healthz`)).status).toBe(200);
    const exited = worker.app.stop();
    await sleep(1_500);
    await redis.restart();
    expect(await Promise.race([exited, sleep(8_000).then(() => 'still running')])).toBe(0);
  });
});
