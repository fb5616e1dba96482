/**
 * Kue and BullMQ sources (contract `sources`), against real ingest, worker and sender processes:
 * producers written the ordinary way feed 2,000 jobs while the ingest that holds the source is
 * SIGKILLed; every job is delivered once (after Idempotency-Key de-duplication), in the
 * producer's order, and ends completed in its queue; a bad job fails there with its code.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import kue from 'kue';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import { Harness, pipelineConfig, range } from './helpers.js';

const JOBS = 2_000;
const BAD_AT = 700;
const MAX_BYTES = 4_096;

/** The ns of the deliveries, after de-duplication, in arrival order. */
function deliveredNs(h: Harness): number[] {
  return h.sinks[0]!.unique().map((d) => (d.body as { n: number }).n);
}

/** Starts a sink, two ingests (the source's lease moves between them), a worker and a sender. */
async function pipeline(h: Harness, source: Record<string, unknown>): Promise<AppProcess[]> {
  const sink = await h.sink();
  const config = await h.config({
    ...pipelineConfig({ out: { url: sink.url } }, { ingest: { maxMessageBytes: MAX_BYTES } }),
    sources: [{ ...source, destination: 'out', leaseTtlMs: 1_000 }],
  });
  const ingests = [await h.start('ingest', config), await h.start('ingest', config)];
  await h.start('transform-worker', config);
  await h.start('resequencer-sender', config);
  return ingests;
}

/** Waits until some deliveries arrived, then SIGKILLs the ingest that holds the source's lease. */
async function killHolder(h: Harness, ingests: AppProcess[]): Promise<AppProcess> {
  await waitFor(() => deliveredNs(h).length >= 300, 'the first deliveries', 60_000);
  const holder = ingests.find((app) => app.logs.some((l) => l.msg === 'source lease taken'));
  if (!holder) throw new Error(`no ingest took the source lease\n${h.dumpLogs()}`);
  await holder.kill();
  return ingests.find((app) => app !== holder)!;
}

function expectAllInOrder(h: Harness): void {
  const expected = range(0, JOBS - 1).filter((n) => n !== BAD_AT);
  expect(deliveredNs(h)).toEqual(expected);
}

describe('sources', () => {
  let queues: TestRedis;
  let h: Harness;

  beforeAll(async () => {
    queues = await startRedis();
  });
  afterAll(async () => {
    await queues.stop();
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.log(h.dumpLogs());
    await h.cleanup();
  });

  it('BullMQ: 2,000 jobs through an ingest SIGKILL, once each, in order, completed in the queue', async () => {
    h = new Harness('source bullmq', inject('redisUrl'));
    const ingests = await pipeline(h, { type: 'bullmq', redis: queues.url, queue: 'orders' });
    const connection = new Redis(queues.url, { maxRetriesPerRequest: null });
    const queue = new Queue('orders', { connection });
    try {
      const producing = (async () => {
        for (let n = 0; n < JOBS; n++) {
          const data = n === BAD_AT ? { n, blob: 'x'.repeat(MAX_BYTES) } : { n };
          await queue.add('order', data, { attempts: 3 });
        }
      })();
      const survivor = await killHolder(h, ingests);
      await producing;
      await waitFor(() => deliveredNs(h).length >= JOBS - 1, 'every job delivered', 90_000);
      expectAllInOrder(h);
      await waitFor(async () => (await queue.getCompletedCount()) === JOBS - 1, 'every job completed', 30_000);
      const [failed] = await queue.getFailed();
      expect(await queue.getFailedCount()).toBe(1);
      expect(failed?.data).toMatchObject({ n: BAD_AT });
      expect(failed?.failedReason).toMatch(/^INGEST_PAYLOAD_TOO_LARGE: /);
      expect(failed?.attemptsMade).toBe(1);
      expect(survivor.logs.some((l) => l.msg === 'source lease taken')).toBe(true);
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
    }
  });

  it('Kue: 2,000 jobs through an ingest SIGKILL, once each, in order, completed in the queue', async () => {
    h = new Harness('source kue', inject('redisUrl'));
    const ingests = await pipeline(h, { type: 'kue', redis: queues.url, prefix: 'q', job: 'convert' });
    const queue = kue.createQueue({ prefix: 'q', redis: queues.url });
    try {
      const producing = (async () => {
        for (let n = 0; n < JOBS; n++) {
          const data = n === BAD_AT ? { n, blob: 'x'.repeat(MAX_BYTES) } : { n };
          await new Promise<void>((resolve, reject) =>
            queue.create('convert', data).save((err?: Error) => (err ? reject(err) : resolve())),
          );
        }
      })();
      await killHolder(h, ingests);
      await producing;
      await waitFor(() => deliveredNs(h).length >= JOBS - 1, 'every job delivered', 90_000);
      expectAllInOrder(h);
      const count = (state: 'completeCount' | 'failedCount'): Promise<number> =>
        new Promise((resolve, reject) =>
          queue[state]('convert', (err: Error | null, n: number) => (err ? reject(err) : resolve(n))),
        );
      await waitFor(async () => (await count('completeCount')) === JOBS - 1, 'every job completed', 30_000);
      expect(await count('failedCount')).toBe(1);
      const failed = await new Promise<kue.Job[]>((resolve, reject) =>
        kue.Job.rangeByType('convert', 'failed', 0, -1, 'asc', (err: Error | null, jobs: kue.Job[]) =>
          err ? reject(err) : resolve(jobs),
        ),
      );
      expect(failed[0]?.data).toMatchObject({ n: BAD_AT });
      expect(String((failed[0] as unknown as { _error: string })._error)).toMatch(/INGEST_PAYLOAD_TOO_LARGE/);
    } finally {
      await new Promise<void>((resolve) => queue.shutdown(1_000, () => resolve()));
    }
  });

  it('Kue: a job a dead holder popped but never marked active is taken first, not stranded', async () => {
    h = new Harness('source kue limbo', inject('redisUrl'));
    const queue = kue.createQueue({ prefix: 'q', redis: queues.url });
    const redis = new Redis(queues.url);
    try {
      for (let n = 0; n < 5; n++) {
        await new Promise<void>((resolve, reject) =>
          queue.create('limbo', { n }).save((err?: Error) => (err ? reject(err) : resolve())),
        );
      }
      // What Kue's worker does first when it takes a job (BLPOP the wake-up token, then pop the
      // job off its type's inactive set), left there as by a holder killed before the next step.
      const [first] = await redis.zrange('q:jobs:limbo:inactive', 0, 0);
      expect(first).toBeDefined();
      await redis.zrem('q:jobs:limbo:inactive', first!);
      await redis.lpop('q:limbo:jobs');
      await pipeline(h, { type: 'kue', redis: queues.url, prefix: 'q', job: 'limbo' });
      await waitFor(() => deliveredNs(h).length >= 5, 'every job delivered', 30_000);
      expect(deliveredNs(h)).toEqual([0, 1, 2, 3, 4]);
      const completed = (): Promise<number> =>
        new Promise((resolve, reject) =>
          queue.completeCount('limbo', (err: Error | null, n: number) => (err ? reject(err) : resolve(n))),
        );
      await waitFor(async () => (await completed()) === 5, 'every job completed', 30_000);
    } finally {
      redis.disconnect();
      await new Promise<void>((resolve) => queue.shutdown(1_000, () => resolve()));
    }
  });
});
