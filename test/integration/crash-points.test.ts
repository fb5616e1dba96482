/**
 * Every crash point of the pipeline, with real processes: each app is SIGKILLed at the moment
 * where a crash could lose or duplicate a message (RESEQ_FAULT for the exact points, a SIGKILL
 * from the test for a transform in flight), and the destination must still get every message
 * once (after Idempotency-Key de-duplication), in order, with the sequences ingest answered.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fixturePath, waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import {
  deadLetters,
  everyEntryTaken,
  expectDelivered,
  freePort,
  Harness,
  ingestUrl,
  metricValue,
  pipelineConfig,
  post,
  range,
  sequences,
  TEST_TRANSFORM,
  type TestDestination,
} from './helpers.js';

/** The line fault-point.ts writes just before the SIGKILL. */
const faultFired = (point: string) => (line: Record<string, unknown>) =>
  line.msg === 'RESEQ_FAULT: killing this process' && line.faultPoint === point;

describe('crash points', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  /** A pipeline with destination `a` and a config file; apps are started by each test. */
  async function setup(
    name: string,
    overrides: Parameters<typeof pipelineConfig>[1] = {},
    destination: Omit<TestDestination, 'url'> = {},
  ) {
    h = new Harness(name, inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ a: { ...destination, url: sink.url } }, overrides));
    return { sink, config };
  }

  async function sendMany(ingest: AppProcess, from: number, to: number): Promise<void> {
    for (let n = from; n <= to; n++) await h.send(ingest, { destination: 'a', payload: { n }, id: `m${n}` });
  }

  /** Every message delivered, in order, each carrying the id ingest gave its sequence. */
  function expectMessages(sink: HttpSink, count: number): void {
    expectDelivered(sink, range(1, count));
    expect(sink.unique().map((d) => d.messageId)).toEqual(range(1, count).map((n) => `m${n}`));
  }

  it('ingest killed after its write, before the 202: the client retries with the same id on another ingest; one delivery, same sequence', async () => {
    const { sink, config } = await setup('crash ingest after write');
    // Dies on its third batch, after the script ran: message 3 is durable, its 202 never sent.
    const doomed = await h.start('ingest', config, { RESEQ_FAULT: 'ingest-after-write:3' });
    const spare = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM });
    await h.start('resequencer-sender', config);

    await sendMany(doomed, 1, 2);
    const body = { destination: 'a', payload: { n: 3 }, id: 'm3' };
    // The client sees the connection drop, not an answer.
    await expect(post(`${ingestUrl(doomed)}/v1/messages`, body)).rejects.toThrow();
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('ingest-after-write'), 1_000);
    // It was written all the same: sequence 3 is taken.
    expect(await h.redis.hget(h.key('seq'), 'a')).toBe('3');

    // The retry, on the ingest that is still up, gets the sequence the lost answer carried.
    expect(await h.send(spare, body)).toEqual({ id: 'm3', sequences: { a: 3 } });
    await sendMany(spare, 4, 5);
    expect(await h.send(spare, body)).toEqual({ id: 'm3', sequences: { a: 3 } });

    await waitFor(() => sink.unique().length >= 5, 'five deliveries', 15_000);
    await sleep(300);
    expectMessages(sink, 5);
    // Not even a redelivery: one request per message.
    expect(sequences(sink.received)).toEqual(range(1, 5));
    expect(await h.redis.hget(h.key('seq'), 'a')).toBe('5');
  });

  it('worker killed mid-transform: the other worker takes its entries over; every message once, in order', async () => {
    const { sink, config } = await setup('crash worker mid transform');
    const env = { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '1500', WORKER_CONCURRENCY: '8' };
    const doomed = await h.start('transform-worker', config, { ...env, RESEQ_CONSUMER_NAME: 'doomed' });
    const survivor = await h.start('transform-worker', config, { ...env, RESEQ_CONSUMER_NAME: 'survivor' });
    await h.start('resequencer-sender', config);
    const ingest = await h.start('ingest', config);

    await sendMany(ingest, 1, 30);
    await waitFor(
      async () => ((await everyEntryTaken(h)).pending.doomed ?? 0) >= 4,
      'transforms in flight on one worker',
    );
    expect(await doomed.kill()).toBe('SIGKILL');
    const orphaned = (await everyEntryTaken(h)).pending.doomed ?? 0;
    expect(orphaned).toBeGreaterThan(0);

    await waitFor(() => sink.unique().length >= 30, 'every message', 20_000);
    await sleep(300);
    expectMessages(sink, 30);
    // The killed worker wrote no result for what it held: nothing reached the wire twice.
    expect(sequences(sink.received)).toEqual(range(1, 30));
    await survivor.waitForLog((l) => l.msg === 'took over entries left idle by a stopped or crashed worker', 1_000);
    expect(await everyEntryTaken(h)).toEqual({ taken: true, pending: {} });
    expect(await h.redis.xlen(h.key('in'))).toBe(0);
    expect(await deadLetters(h)).toEqual([]);
  });

  it('worker killed right after its complete script: what it completed is not redone; the rest is taken over; every message once, in order', async () => {
    const { sink, config } = await setup('crash worker after complete');
    const env = { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '300', WORKER_CONCURRENCY: '8' };
    const doomed = await h.start('transform-worker', config, {
      ...env,
      RESEQ_CONSUMER_NAME: 'doomed',
      RESEQ_FAULT: 'worker-after-complete:2',
    });
    const survivor = await h.start('transform-worker', config, { ...env, RESEQ_CONSUMER_NAME: 'survivor' });
    const metricsPort = await freePort();
    await h.start('resequencer-sender', config, { METRICS_PORT: String(metricsPort) });
    const ingest = await h.start('ingest', config);

    await sendMany(ingest, 1, 40);
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('worker-after-complete'), 1_000);

    await waitFor(() => sink.unique().length >= 40, 'every message', 20_000);
    await sleep(300);
    expectMessages(sink, 40);
    expect(sequences(sink.received)).toEqual(range(1, 40));
    // complete acknowledged what it wrote in the same step: no entry was transformed into a
    // second result that the reorder buffer had to drop.
    expect(await metricValue(metricsPort, 'reseq_duplicate_results_total').catch(() => 0)).toBe(0);
    expect(survivor.logs.some((l) => l.msg === 'outcomes already recorded by a peer were dropped')).toBe(false);
    expect(await everyEntryTaken(h)).toEqual({ taken: true, pending: {} });
    expect(await deadLetters(h)).toEqual([]);
  });

  it.each([
    ['under a fixed RESEQ_CONSUMER_NAME (a restarted container re-reads its own entries)', 'looper'],
    ['under a new name each time (a peer takes the entry over)', undefined],
  ])(
    'worker crash loop %s: the message that kills every worker is dead-lettered as TRANSFORM_ABANDONED; the others go on',
    async (_how, consumerName) => {
      // maxAttempts 2: an entry handed out more than 4 times without settling is given up.
      const { sink, config } = await setup('crash loop', { transform: { maxAttempts: 2 } }, { onDeadLetter: 'skip' });
      const ingest = await h.start('ingest', config);
      await h.start('resequencer-sender', config);
      await h.send(ingest, { destination: 'a', payload: { n: 1 }, id: 'm1' });
      await h.send(ingest, { destination: 'a', payload: { n: 2, crash: true }, id: 'm2' });
      await h.send(ingest, { destination: 'a', payload: { n: 3 }, id: 'm3' });

      // A supervisor (systemd, Kubernetes) starting the worker again each time it dies.
      const env: Record<string, string> = {
        TRANSFORM_MODULE: fixturePath('transforms', 'crash-worker.mjs'),
        WORKER_CONCURRENCY: '1',
        ...(consumerName ? { RESEQ_CONSUMER_NAME: consumerName } : {}),
      };
      const abandoned = async () => (await deadLetters(h)).find((l) => l.m === 'm2');
      let crashes = 0;
      for (let starts = 0; starts < 10 && !(await abandoned()); starts++) {
        const worker = await h.start('transform-worker', config, env).catch(() => undefined);
        if (worker === undefined) {
          crashes++; // died before it logged that it started
          continue;
        }
        for (;;) {
          const exit = await Promise.race([worker.exited, sleep(100).then(() => undefined)]);
          if (exit !== undefined) {
            expect(exit).toBe('SIGKILL');
            crashes++;
            break;
          }
          if (await abandoned()) break;
        }
      }

      const letter = await abandoned();
      expect(letter?.e).toMatch(/^TRANSFORM_ABANDONED/);
      expect(letter).toMatchObject({ d: 'a', s: '2' });
      // Handed out 1, 2, 3, 4 times, each time killing its worker; the 5th time it is given up.
      expect(crashes).toBe(4);
      await waitFor(() => sink.unique().length >= 2, 'the messages around it', 10_000);
      await sleep(300);
      expectDelivered(sink, [1, 3]);
      expect(sequences(sink.received)).toEqual([1, 3]);
    },
  );

  it('sender killed after the 2xx, before recording it: the next sender sends that message again once, same Idempotency-Key, then goes on in order', async () => {
    const { sink, config } = await setup('crash sender after 2xx', { sender: { leaseTtlMs: 1_500 } });
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM });
    const doomed = await h.start('resequencer-sender', config, { RESEQ_FAULT: 'sender-after-2xx:3' });
    // The doomed one holds the destination before the other starts.
    expect(await h.redis.exists(h.key('lease:a'))).toBe(1);
    await h.start('resequencer-sender', config);

    await sendMany(ingest, 1, 8);
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('sender-after-2xx'), 1_000);
    expect(await h.redis.hget(h.key('pos'), 'a')).toBe('2');

    await waitFor(() => sink.unique().length >= 8, 'every message', 15_000);
    await sleep(300);
    expectMessages(sink, 8);
    // On the wire: 3 twice in a row, nothing lower after anything higher.
    expect(sequences(sink.received)).toEqual([1, 2, 3, 3, 4, 5, 6, 7, 8]);
    expect(sink.received[3]!.idempotencyKey).toBe(sink.received[2]!.idempotencyKey);
    expect(sink.received[3]!.body).toEqual(sink.received[2]!.body);
    expect(await h.redis.hget(h.key('pos'), 'a')).toBe('8');
  });

  it('sender killed right after recording: the next sender continues with the next message, nothing resent', async () => {
    const { sink, config } = await setup('crash sender after record', { sender: { leaseTtlMs: 1_500 } });
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM });
    const doomed = await h.start('resequencer-sender', config, { RESEQ_FAULT: 'sender-after-record:3' });
    expect(await h.redis.exists(h.key('lease:a'))).toBe(1);
    await h.start('resequencer-sender', config);

    await sendMany(ingest, 1, 8);
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('sender-after-record'), 1_000);
    expect(await h.redis.hget(h.key('pos'), 'a')).toBe('3');

    await waitFor(() => sink.unique().length >= 8, 'every message', 15_000);
    await sleep(300);
    expectMessages(sink, 8);
    expect(sequences(sink.received)).toEqual(range(1, 8));
  });

  it('with sender.recordAhead, sender killed right after recording: the message it had sent meanwhile comes again, right after itself; nothing at or below the position does', async () => {
    const { sink, config } = await setup('crash sender after record ahead', {
      sender: { leaseTtlMs: 1_500, recordAhead: true },
    });
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM });
    // Every result is ready before a sender starts: the lane delivers them back to back, each
    // sent while the previous one's progress is on its way.
    await sendMany(ingest, 1, 8);
    await waitFor(async () => (await h.redis.xlen(h.key('res:a'))) === 8, 'the 8 results');
    const doomed = await h.start('resequencer-sender', config, { RESEQ_FAULT: 'sender-after-record:3' });
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('sender-after-record'), 1_000);
    expect(await h.redis.hget(h.key('pos'), 'a')).toBe('3');
    await h.start('resequencer-sender', config);

    await waitFor(() => sink.unique().length >= 8, 'every message', 15_000);
    await sleep(300);
    expectMessages(sink, 8);
    // The answer for 3 came while 4 was on the wire: 4 comes again, with the same Idempotency-Key.
    expect(sequences(sink.received)).toEqual([1, 2, 3, 4, 4, 5, 6, 7, 8]);
    expect(sink.received[4]!.idempotencyKey).toBe(sink.received[3]!.idempotencyKey);
    expect(sink.received[4]!.body).toEqual(sink.received[3]!.body);
  });
});
