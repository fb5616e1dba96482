/**
 * Hedged dispatch (`worker.hedgeAfterMs`) through real processes: a transform that is slow on its
 * first run gets a copy on another worker, whose result wins and is delivered once, in order,
 * while the slow copy stops; a lone worker never hedges its own transform; a hedged poison
 * message is dead-lettered once and a hedged flaky one keeps its retry on the worker that holds
 * it; with hedging off nothing of it runs.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fixturePath, waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { deadLetters, expectDelivered, freePort, Harness, metricValue, pipelineConfig, range } from './helpers.js';

const TRANSFORM = fixturePath('transforms', 'slow-first-run.mjs');

/** One run of the transform, as the fixture logs it. */
interface Run {
  sequence: number;
  attempt: number;
  pid: number;
}

describe('hedged dispatch', () => {
  let h: Harness;
  let dir: string;
  let sink: HttpSink;
  let config: string;
  let ingest: AppProcess;
  const workers: { app: AppProcess; metricsPort: number }[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
    workers.splice(0);
    await rm(dir, { recursive: true, force: true });
  });

  async function pipeline(name: string, worker: object, onDeadLetter?: 'skip'): Promise<void> {
    h = new Harness(name, inject('redisUrl'));
    dir = await mkdtemp(join(tmpdir(), 'reseq-hedge-'));
    sink = await h.sink();
    config = await h.config(pipelineConfig({ a: { url: sink.url, onDeadLetter } }, { worker }));
    ingest = await h.start('ingest', config);
  }

  async function startWorkers(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const metricsPort = await freePort();
      const app = await h.start('transform-worker', config, {
        TRANSFORM_MODULE: TRANSFORM,
        RESEQ_TEST_MAX_DELAY_MS: '20',
        RESEQ_TEST_RUN_LOG: join(dir, 'runs.log'),
        METRICS_PORT: String(metricsPort),
      });
      workers.push({ app, metricsPort });
    }
  }

  /** A payload slow (by `ms`) on its first run anywhere; the marker file holds that run's pid. */
  function slowOnce(n: number, ms: number, extra: object = {}): object {
    return { n, slowFirstRun: { marker: join(dir, `marker-${n}`), ms }, ...extra };
  }

  async function runs(): Promise<Run[]> {
    const text = await readFile(join(dir, 'runs.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [sequence, attempt, pid] = line.split(' ').map(Number);
        return { sequence: sequence!, attempt: attempt!, pid: pid! };
      });
  }

  async function total(metric: string): Promise<number> {
    let sum = 0;
    for (const w of workers) sum += await metricValue(w.metricsPort, metric);
    return sum;
  }

  it('runs a copy of a slow transform on another worker; the copy wins and is delivered once, in order', async () => {
    await pipeline('hedge wins', { hedgeAfterMs: 300 });
    await startWorkers(2);
    await h.start('resequencer-sender', config);

    for (let n = 1; n <= 6; n++) {
      // Message 3 would take two minutes on its first run: only its hedge can deliver it in time.
      await h.send(ingest, { destination: 'a', payload: n === 3 ? slowOnce(3, 120_000) : { n } });
    }
    await waitFor(() => sink.unique().length >= 6, 'all six deliveries');
    await sleep(300);

    expectDelivered(sink, range(1, 6));
    expect(sink.received).toHaveLength(6);
    expect(sink.received.map((d) => (d.body as { n: number }).n)).toEqual(range(1, 6));
    expect(await total('reseq_hedges_requested_total')).toBe(1);
    expect(await total('reseq_hedges_started_total')).toBe(1);
    expect(await total('reseq_hedges_won_total')).toBe(1);
    const logged = (msg: string): number => workers.flatMap((w) => w.app.logs).filter((l) => l.msg === msg).length;
    expect(logged('hedge won: its result was recorded before the first copy finished')).toBe(1);
    // The slow first copy learnt that the hedge finished it, and stopped.
    await waitFor(
      () => logged('another copy finished this entry first; stopped this one') === 1,
      'the slow copy to stop',
    );

    // Message 3 ran twice, on two different workers, both as attempt 1; every other one once.
    const all = await runs();
    const third = all.filter((r) => r.sequence === 3);
    expect(third.map((r) => r.attempt)).toEqual([1, 1]);
    expect(new Set(third.map((r) => r.pid)).size).toBe(2);
    expect(
      all
        .filter((r) => r.sequence !== 3)
        .map((r) => r.sequence)
        .sort(),
    ).toEqual([1, 2, 4, 5, 6]);
    expect(await deadLetters(h)).toEqual([]);
    expect(await h.redis.zcard(h.key('hedge'))).toBe(0);
  });

  it('never hedges a transform on the worker that runs it: alone, the slow message waits for its run', async () => {
    await pipeline('hedge alone', { hedgeAfterMs: 200 });
    await startWorkers(1);
    await h.start('resequencer-sender', config);

    await h.send(ingest, { destination: 'a', payload: { n: 1 } });
    await h.send(ingest, { destination: 'a', payload: slowOnce(2, 2_000) });
    await h.send(ingest, { destination: 'a', payload: { n: 3 } });
    await waitFor(() => sink.unique().length >= 3, 'all three deliveries');

    expectDelivered(sink, range(1, 3));
    expect(sink.received).toHaveLength(3);
    expect(await total('reseq_hedges_requested_total')).toBe(1);
    expect(await total('reseq_hedges_started_total')).toBe(0);
    expect((await runs()).filter((r) => r.sequence === 2)).toHaveLength(1);
    // The request nobody could take is removed once its entry is completed.
    await waitFor(async () => (await h.redis.zcard(h.key('hedge'))) === 0, 'the stale request to be cleaned', 5_000);
  });

  it('dead-letters a hedged poison message once, and leaves a hedged flaky one its retry', async () => {
    await pipeline('hedge poison', { hedgeAfterMs: 200 }, 'skip');
    await startWorkers(2);
    await h.start('resequencer-sender', config);

    await h.send(ingest, { destination: 'a', payload: { n: 1 } });
    // Slow, then a permanent failure on every run: the hedge copy fails too, at once.
    await h.send(ingest, { destination: 'a', payload: slowOnce(2, 1_500, { poison: true }), id: 'poison-2' });
    // Slow, then fails attempt 1 wherever it runs; attempt 2 succeeds.
    await h.send(ingest, { destination: 'a', payload: slowOnce(3, 1_500, { fail: 1 }) });
    await h.send(ingest, { destination: 'a', payload: { n: 4 } });
    await waitFor(() => sink.unique().length >= 3, 'messages 1, 3 and 4');
    await sleep(500);

    expectDelivered(sink, [1, 3, 4]);
    expect(sink.received).toHaveLength(3);
    const letters = await deadLetters(h);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ d: 'a', s: '2', m: 'poison-2', a: '1' });
    expect(letters[0]!.e).toMatch(/^TRANSFORM_PERMANENT: .*poison message/);

    expect(await total('reseq_hedges_started_total')).toBe(2);
    expect(await total('reseq_hedges_won_total')).toBe(0);
    const all = await runs();
    // Both hedged: attempt 1 ran on two workers each.
    for (const sequence of [2, 3]) {
      const first = all.filter((r) => r.sequence === sequence && r.attempt === 1);
      expect(new Set(first.map((r) => r.pid)).size, `sequence ${sequence}`).toBe(2);
    }
    // Only the worker that held message 3 retried it, once, after its own attempt 1 failed.
    const holder = Number(await readFile(join(dir, 'marker-3'), 'utf8'));
    expect(all.filter((r) => r.sequence === 3 && r.attempt > 1)).toEqual([{ sequence: 3, attempt: 2, pid: holder }]);
    expect(all.filter((r) => r.sequence === 2 && r.attempt > 1)).toEqual([]);
  });

  it('with hedging off, a slow transform runs once and nothing of hedging happens', async () => {
    await pipeline('hedge off', {});
    await startWorkers(2);
    await h.start('resequencer-sender', config);

    for (let n = 1; n <= 4; n++) {
      await h.send(ingest, { destination: 'a', payload: n === 2 ? slowOnce(2, 1_500) : { n } });
    }
    await waitFor(() => sink.unique().length >= 4, 'all four deliveries');
    await sleep(300);

    expectDelivered(sink, range(1, 4));
    expect(sink.received).toHaveLength(4);
    expect((await runs()).map((r) => r.sequence).sort()).toEqual([1, 2, 3, 4]);
    for (const metric of ['reseq_hedges_requested_total', 'reseq_hedges_started_total', 'reseq_hedges_won_total']) {
      expect(await total(metric), metric).toBe(0);
    }
    expect(await h.redis.exists(h.key('hedge'))).toBe(0);
    expect(workers.flatMap((w) => w.app.logs).some((l) => String(l.msg).includes('hedge'))).toBe(false);
  });
});
