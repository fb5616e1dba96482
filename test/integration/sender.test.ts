/**
 * The delivery stage through real processes: retries of 5xx and timeouts, a failing
 * destination beside a healthy one, a 4xx dead-lettering and blocking, results kept in their
 * stream until delivered or moved into the buffer when held up, two senders sharing
 * destinations by lease (SIGKILL one, the other takes over), and SIGTERM releasing leases.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fixturePath, waitFor, type AppProcess } from '../fixtures/apps.js';
import type { Delivery, HttpSink } from '../fixtures/http-sink.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import {
  deadLetters,
  expectDelivered,
  freePort,
  get,
  Harness,
  pipelineConfig,
  range,
  sequences,
  TEST_TRANSFORM,
  type TestDestination,
} from './helpers.js';

/** Every request a sink saw (answered 2xx or not), in arrival order. */
function recordAttempts(
  sink: HttpSink,
  status: (d: Delivery, attempt: number) => number | Promise<number>,
): Delivery[] {
  const attempts: Delivery[] = [];
  const counts = new Map<string, number>();
  sink.respond = (d) => {
    attempts.push(d);
    const n = (counts.get(d.idempotencyKey) ?? 0) + 1;
    counts.set(d.idempotencyKey, n);
    return status(d, n);
  };
  return attempts;
}

/**
 * Message n+1 is never sent before message n was answered 2xx: in the arrival order of
 * attempts, a higher sequence never comes before every earlier one succeeded.
 */
function expectNoOvertaking(attempts: readonly Delivery[], succeeded: readonly Delivery[]): void {
  const okKeys = new Set(succeeded.map((d) => d.idempotencyKey));
  let highest = 0;
  for (const attempt of attempts) {
    expect(attempt.sequence, `sequence ${attempt.sequence} after ${highest}`).toBeGreaterThanOrEqual(highest);
    highest = Math.max(highest, attempt.sequence);
  }
  for (const seq of new Set(attempts.map((a) => a.sequence))) {
    const later = attempts.findIndex((a) => a.sequence > seq);
    if (later < 0) continue;
    // Some attempt of `seq` before the first later sequence must have been a success.
    const before = attempts.slice(0, later).filter((a) => a.sequence === seq);
    expect(
      before.some((a) => okKeys.has(a.idempotencyKey)),
      `sequence ${seq} succeeded before a later one was sent`,
    ).toBe(true);
  }
}

/** Which process holds each destination's lease ("<hostname>-<pid>-<hex>|<token>"). */
async function leaseHolders(h: Harness, destinations: readonly string[]): Promise<Map<string, number | undefined>> {
  const holders = new Map<string, number | undefined>();
  for (const d of destinations) {
    const value = await h.redis.get(h.key(`lease:${d}`));
    const pid = value === null ? undefined : Number(/-(\d+)-[0-9a-f]+\|\d+$/.exec(value)?.[1]);
    holders.set(d, pid);
  }
  return holders;
}

describe('resequencer-sender', () => {
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
    destinationExtras: Record<string, object> = {},
  ): Promise<{ sinks: Record<string, HttpSink>; config: string; ingest: AppProcess }> {
    h = new Harness(name, inject('redisUrl'));
    const sinks: Record<string, HttpSink> = {};
    for (const d of Object.keys(destinations)) sinks[d] = await h.sink();
    const config = pipelineConfig(
      Object.fromEntries(Object.entries(destinations).map(([d, o]) => [d, { ...o, url: sinks[d]!.url }])),
      overrides,
    );
    const configured = config.destinations as Record<string, Record<string, unknown>>;
    for (const [d, extra] of Object.entries(destinationExtras)) Object.assign(configured[d]!, extra);
    const path = await h.config(config);
    const ingest = await h.start('ingest', path);
    await h.start('transform-worker', path, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '20' });
    return { sinks, config: path, ingest };
  }

  async function sendMany(ingest: AppProcess, destinations: string[], from: number, to: number): Promise<void> {
    for (let n = from; n <= to; n++) await h.send(ingest, { destinations, payload: { n } });
  }

  it('retries 5xx answers and still delivers everything in order', async () => {
    const { sinks, config, ingest } = await pipeline('sender 5xx', { a: {} });
    const sink = sinks.a!;
    // Every third message fails twice (500, then 503), the others once in a while.
    const attempts = recordAttempts(sink, (d, attempt) =>
      d.sequence % 3 === 0 && attempt <= 2
        ? [500, 503][attempt - 1]!
        : d.sequence % 4 === 0 && attempt === 1
          ? 502
          : 200,
    );
    await h.start('resequencer-sender', config);
    await sendMany(ingest, ['a'], 1, 12);
    await waitFor(() => sink.unique().length >= 12, 'twelve deliveries', 20_000);
    await sleep(300);

    expectDelivered(sink, range(1, 12));
    expect(sink.received).toHaveLength(12);
    expectNoOvertaking(attempts, sink.received);
    // Each failed answer was retried with the same Idempotency-Key and message id.
    const keysBySequence = new Map<number, Set<string>>();
    for (const a of attempts)
      keysBySequence.set(a.sequence, (keysBySequence.get(a.sequence) ?? new Set()).add(a.idempotencyKey));
    expect([...keysBySequence.values()].every((keys) => keys.size === 1)).toBe(true);
    expect(attempts.filter((a) => a.sequence === 3)).toHaveLength(3);
    expect(attempts.filter((a) => a.sequence === 4)).toHaveLength(2);
    expect(sink.received.map((d) => (d.body as { n: number }).n)).toEqual(range(1, 12));
  });

  it('retries a delivery that timed out, with the same Idempotency-Key', async () => {
    const { sinks, config, ingest } = await pipeline('sender timeout', { a: {} }, {}, { a: { timeoutMs: 500 } });
    const sink = sinks.a!;
    const attempts = recordAttempts(sink, async (d, attempt) => {
      if (d.sequence === 2 && attempt === 1) await sleep(1_500);
      return 200;
    });
    await h.start('resequencer-sender', config);
    await sendMany(ingest, ['a'], 1, 4);
    await waitFor(() => sink.unique().length >= 4, 'four deliveries', 15_000);
    await sleep(1_500);

    expect(sequences(sink.unique())).toEqual(range(1, 4));
    const second = attempts.filter((a) => a.sequence === 2);
    expect(second.length).toBeGreaterThanOrEqual(2);
    expect(new Set(second.map((a) => a.idempotencyKey)).size).toBe(1);
    // In arrival order, 3 came only after the retries of 2.
    const arrivals = sequences(attempts);
    expect(arrivals).toEqual([...arrivals].sort((x, y) => x - y));
    expect([...new Set(arrivals)]).toEqual(range(1, 4));
  });

  it('keeps delivering to a healthy destination while another keeps failing', async () => {
    const { sinks, config, ingest } = await pipeline('sender isolation', { up: {}, down: {} });
    let downHealthy = false;
    const downAttempts = recordAttempts(sinks.down!, () => (downHealthy ? 200 : 503));
    await h.start('resequencer-sender', config);
    await sendMany(ingest, ['up', 'down'], 1, 10);

    await waitFor(() => sinks.up!.unique().length >= 10, 'the healthy destination to get everything', 15_000);
    expectDelivered(sinks.up!, range(1, 10));
    expect(sinks.down!.received).toEqual([]);
    // The failing destination is only ever offered its first message.
    expect(downAttempts.length).toBeGreaterThan(1);
    expect(new Set(sequences(downAttempts))).toEqual(new Set([1]));

    downHealthy = true;
    await waitFor(() => sinks.down!.unique().length >= 10, 'the recovered destination to catch up', 15_000);
    await sleep(300);
    expectDelivered(sinks.down!, range(1, 10));
    expectNoOvertaking(downAttempts, sinks.down!.received);
  });

  it('dead-letters a message the destination refuses with a 4xx; "block" stops there, "skip" goes on', async () => {
    const { sinks, config, ingest } = await pipeline('sender 4xx', { blocker: {}, skipper: { onDeadLetter: 'skip' } });
    const refuse = (d: Delivery): number => (d.sequence === 3 ? 400 : 200);
    const blockerAttempts = recordAttempts(sinks.blocker!, refuse);
    recordAttempts(sinks.skipper!, refuse);
    await h.start('resequencer-sender', config);
    await sendMany(ingest, ['blocker', 'skipper'], 1, 3);
    await h.send(ingest, { destinations: ['blocker', 'skipper'], payload: { n: 4 }, id: 'after-refused' });
    await h.send(ingest, { destinations: ['blocker', 'skipper'], payload: { n: 5 } });

    await waitFor(() => sinks.skipper!.unique().length >= 4, 'the skip destination to get 1, 2, 4, 5', 15_000);
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'blocker')) === '3', 'blocker blocked at 3');
    await sleep(1_500);

    expectDelivered(sinks.skipper!, [1, 2, 4, 5]);
    expectDelivered(sinks.blocker!, [1, 2]);
    // A 4xx is final: one attempt, and nothing after it was offered.
    expect(sequences(blockerAttempts)).toEqual([1, 2, 3]);
    expect(await h.redis.hget(h.key('blocked'), 'skipper')).toBeNull();

    const letters = (await deadLetters(h)).sort((x, y) => x.d!.localeCompare(y.d!));
    expect(letters.map((l) => [l.d, l.s, l.stage])).toEqual([
      ['blocker', '3', 'delivery'],
      ['skipper', '3', 'delivery'],
    ]);
    for (const letter of letters) {
      expect(letter.e).toMatch(/400/);
      expect(JSON.parse(letter.p!)).toMatchObject({ n: 3, transformed: true });
      expect(typeof letter.m).toBe('string');
    }
  });

  it('keeps results in their stream until delivered; those held up by a slow earlier one move into the reorder buffer after a while; nothing is left once delivered', async () => {
    h = new Harness('sender unmoved results', inject('redisUrl'));
    const dir = await mkdtemp(join(tmpdir(), 'reseq-unmoved-'));
    try {
      const sink = await h.sink();
      const config = await h.config(pipelineConfig({ a: { url: sink.url } }));
      const ingest = await h.start('ingest', config);
      await h.start('transform-worker', config, {
        TRANSFORM_MODULE: fixturePath('transforms', 'slow-first-run.mjs'),
        RESEQ_TEST_MAX_DELAY_MS: '0',
      });
      await h.start('resequencer-sender', config);
      const streamLength = () => h.redis.xlen(h.key('res:a'));
      const bufferLength = () => h.redis.hlen(h.key('buf:a'));

      // Delivered at once: nothing stays behind, in the stream or in the buffer.
      await sendMany(ingest, ['a'], 1, 3);
      await waitFor(() => sink.unique().length === 3, '1..3 delivered');
      expect([await streamLength(), await bufferLength()]).toEqual([0, 0]);

      // 4 takes 6 s; 5..7 wait for it, first in their stream, then (after 2 s) in the buffer.
      await h.send(ingest, {
        destinations: ['a'],
        payload: { n: 4, slowFirstRun: { marker: join(dir, 'm4'), ms: 6000 } },
      });
      await sendMany(ingest, ['a'], 5, 7);
      await waitFor(async () => (await bufferLength()) === 3, '5..7 moved into the buffer', 5_000);
      expect(await streamLength()).toBe(0);
      expectDelivered(sink, [1, 2, 3]);

      await waitFor(() => sink.unique().length === 7, '4..7 delivered', 15_000);
      expectDelivered(sink, range(1, 7));
      expect([await streamLength(), await bufferLength()]).toEqual([0, 0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('shares destinations between two senders; after a SIGKILL the other takes over and delivery goes on in order', async () => {
    const names = ['d1', 'd2', 'd3', 'd4'];
    const { sinks, config, ingest } = await pipeline('sender takeover', Object.fromEntries(names.map((d) => [d, {}])), {
      sender: { leaseTtlMs: 1_000 },
    });
    const first = await h.start('resequencer-sender', config);
    const second = await h.start('resequencer-sender', config);
    const pids = [first.child.pid, second.child.pid];

    // Fair share: each ends up with two of the four.
    await waitFor(
      async () => {
        const holders = [...(await leaseHolders(h, names)).values()];
        return pids.every((pid) => holders.filter((p) => p === pid).length === 2);
      },
      'each sender to hold two leases',
      10_000,
    );

    let sent = 0;
    let sending = true;
    const producer = (async () => {
      while (sending) {
        sent++;
        await h.send(ingest, { destinations: names, payload: { n: sent } });
        await sleep(20);
      }
    })();
    await waitFor(() => names.every((d) => sinks[d]!.unique().length >= 5), 'deliveries to start everywhere');

    await first.kill();
    const killedAt = Date.now();
    await waitFor(
      async () => [...(await leaseHolders(h, names)).values()].every((pid) => pid === second.child.pid),
      'the survivor to hold every lease',
      10_000,
    );
    // Within a few lease TTLs (1 s each).
    expect(Date.now() - killedAt).toBeLessThan(4_000);
    await sleep(500);
    sending = false;
    await producer;

    await waitFor(() => names.every((d) => sinks[d]!.unique().length >= sent), 'every message everywhere', 20_000);
    await sleep(300);
    for (const d of names) {
      expectDelivered(sinks[d]!, range(1, sent));
      expect(sinks[d]!.unique().map((x) => (x.body as { n: number }).n)).toEqual(range(1, sent));
    }
  });

  it('exits 0 on SIGTERM after finishing its delivery in flight, and releases its leases at once', async () => {
    const names = ['a', 'b', 'c'];
    const { sinks, config, ingest } = await pipeline('sender sigterm', Object.fromEntries(names.map((d) => [d, {}])), {
      // A long TTL: only an explicit release frees the leases within the test.
      sender: { leaseTtlMs: 30_000 },
    });
    let slowStarted = false;
    recordAttempts(sinks.a!, async (d) => {
      if (d.sequence === 3) {
        slowStarted = true;
        await sleep(1_500);
      }
      return 200;
    });
    const sender = await h.start('resequencer-sender', config);
    await sendMany(ingest, names, 1, 5);
    await waitFor(() => slowStarted, 'delivery 3 to be in flight');

    const leasesBefore = await leaseHolders(h, names);
    expect([...leasesBefore.values()]).toEqual(names.map(() => sender.child.pid));
    expect(await sender.stop()).toBe(0);

    for (const d of names) expect(await h.redis.exists(h.key(`lease:${d}`)), `lease of ${d}`).toBe(0);
    // The delivery in flight was answered and recorded: a new sender does not send it again.
    expect(sequences(sinks.a!.received)).toEqual([1, 2, 3]);
    expect(await h.redis.hget(h.key('pos'), 'a')).toBe('3');

    const successor = await h.start('resequencer-sender', config);
    await waitFor(() => names.every((d) => sinks[d]!.unique().length >= 5), 'everything after the restart', 10_000);
    await sleep(300);
    for (const d of names) expectDelivered(sinks[d]!, range(1, 5));
    expect(sequences(sinks.a!.received)).toEqual(range(1, 5));
    expect(await successor.stop()).toBe(0);
  });

  it('exits 0 on SIGTERM while Redis is down, once Redis is back', async () => {
    redis = await startRedis();
    h = new Harness('sender sigterm redis down', redis.url);
    const sink = await h.sink();
    // Lease ticks 2 s apart: SIGTERM comes between two, while the connections reconnect.
    const config = await h.config(pipelineConfig({ a: { url: sink.url } }, { sender: { leaseTtlMs: 6_000 } }));
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM });
    const metricsPort = await freePort();
    const sender = await h.start('resequencer-sender', config, { METRICS_PORT: String(metricsPort) });
    await h.send(ingest, { destination: 'a', payload: { n: 1 } });
    await waitFor(() => sink.unique().length >= 1, 'the first delivery');
    expect((await get(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);

    await redis.kill();
    await sleep(100);
    const exited = sender.stop();
    await sleep(1_500);
    // Stopping, and without Redis: not ready (the ops server answers until the exit).
    expect((await get(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(503);
    await redis.restart();
    expect(await Promise.race([exited, sleep(8_000).then(() => 'still running')])).toBe(0);
  });
});
