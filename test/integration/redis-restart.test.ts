/**
 * Redis itself crashing: a private redis-server with AOF `appendfsync always` is SIGKILLed
 * while messages flow through ingest, two workers and two senders, and restarted on the same
 * port. The apps must reconnect on their own (no restart of theirs), their Lua scripts must
 * work again on the fresh script cache (NOSCRIPT), and every message that got a 202 (clients
 * retry 503s and dropped connections with the same id) must reach its destination once after
 * de-duplication, in order, under the sequence ingest answered.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import { expectDelivered, Harness, ingestUrl, pipelineConfig, post, range, TEST_TRANSFORM } from './helpers.js';

const DESTINATIONS = ['a', 'b'] as const;
const CLIENTS = 4;

/** What the clients saw. */
interface Traffic {
  /** Per destination: sequence -> message id, from the 202 answers. */
  assigned: Map<string, Map<number, string>>;
  /** Ids accepted after the restart. */
  acceptedAfterRestart: number;
  /** Answers other than 202 (status, or "network" for a dropped connection). */
  refusals: Map<string, number>;
}

describe('Redis restart', () => {
  let h: Harness | undefined;
  let redis: TestRedis | undefined;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && h) console.error(h.dumpLogs(25));
    await h?.cleanup();
    await redis?.stop();
    h = undefined;
    redis = undefined;
  });

  /**
   * Clients that keep sending until `running()` turns false, each message to one or both
   * destinations, retrying 429, 503 and lost connections with the same id the way the
   * contract asks a client to.
   */
  async function produce(ingest: AppProcess, running: () => boolean, restarted: () => boolean): Promise<Traffic> {
    const traffic: Traffic = {
      assigned: new Map(DESTINATIONS.map((d) => [d, new Map<number, string>()])),
      acceptedAfterRestart: 0,
      refusals: new Map(),
    };
    let next = 0;
    const url = `${ingestUrl(ingest)}/v1/messages`;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (running()) {
          const i = next++;
          const id = `m-${i}-${randomUUID().slice(0, 8)}`;
          const destinations = i % 3 === 0 ? [...DESTINATIONS] : [DESTINATIONS[i % 2]!];
          for (;;) {
            const answer = await post(url, { id, destinations, payload: { i } }).catch(() => undefined);
            if (answer?.status === 202) {
              const { sequences } = answer.body as { sequences: Record<string, number> };
              expect(Object.keys(sequences).sort()).toEqual([...destinations].sort());
              for (const [d, seq] of Object.entries(sequences)) traffic.assigned.get(d)!.set(seq, id);
              if (restarted()) traffic.acceptedAfterRestart++;
              break;
            }
            const kind = answer === undefined ? 'network' : String(answer.status);
            traffic.refusals.set(kind, (traffic.refusals.get(kind) ?? 0) + 1);
            // Only the retryable answers are expected here.
            expect(['network', '429', '503']).toContain(kind);
            await sleep(100);
          }
          await sleep(10);
        }
      }),
    );
    return traffic;
  }

  /** Every accepted message once, in order, under its sequence; on the wire only immediate repeats. */
  function expectComplete(sink: HttpSink, assigned: Map<number, string>): void {
    expectDelivered(sink, range(1, assigned.size));
    for (const delivery of sink.unique()) expect(delivery.messageId).toBe(assigned.get(delivery.sequence));
    for (let k = 1; k < sink.received.length; k++) {
      const [before, now] = [sink.received[k - 1]!, sink.received[k]!];
      if (now.sequence === before.sequence) expect(now.idempotencyKey).toBe(before.idempotencyKey);
      else expect(now.sequence).toBe(before.sequence + 1);
    }
  }

  it('survives a SIGKILL of Redis (AOF, appendfsync always) mid-run: apps reconnect, scripts reload, nothing accepted is lost or reordered', async () => {
    redis = await startRedis({ appendonly: true });
    const harness = new Harness('redis restart', redis.url);
    h = harness;
    const sinks = new Map<string, HttpSink>();
    for (const d of DESTINATIONS) sinks.set(d, await harness.sink());
    const config = await harness.config(
      pipelineConfig(Object.fromEntries(DESTINATIONS.map((d) => [d, { url: sinks.get(d)!.url }])), {
        sender: { leaseTtlMs: 1_500 },
      }),
    );
    const workerEnv = { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '100' };
    const apps = [
      await harness.start('ingest', config),
      await harness.start('transform-worker', config, { ...workerEnv, RESEQ_CONSUMER_NAME: 'w1' }),
      await harness.start('transform-worker', config, { ...workerEnv, RESEQ_CONSUMER_NAME: 'w2' }),
      await harness.start('resequencer-sender', config),
      await harness.start('resequencer-sender', config),
    ];
    const ingest = apps[0]!;

    let running = true;
    let restartedAt: number | undefined;
    const producing = produce(
      ingest,
      () => running,
      () => restartedAt !== undefined,
    );
    await waitFor(() => DESTINATIONS.every((d) => sinks.get(d)!.unique().length >= 20), 'traffic to flow', 15_000);

    // Twice: down briefly, then longer than a lease and a worker's claim timeout.
    for (const downMs of [500, 3_000]) {
      await redis.kill();
      await sleep(downMs);
      await redis.restart();
      restartedAt = Date.now();
      await sleep(2_000);
    }
    // Script calls since the last restart began as EVALSHA on an empty script cache: ioredis
    // answered each NOSCRIPT with one EVAL, then EVALSHA found the script loaded again.
    const stats = await harness.redis.info('commandstats');
    const calls = (command: string) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    expect(calls('eval')).toBeGreaterThan(0);
    expect(calls('evalsha')).toBeGreaterThan(calls('eval'));
    running = false;
    const traffic = await producing;

    expect(traffic.acceptedAfterRestart).toBeGreaterThan(0);
    // The clients did see the outage (ingest answers 503 while Redis is gone).
    expect(traffic.refusals.get('503') ?? 0).toBeGreaterThan(0);
    await waitFor(
      () => DESTINATIONS.every((d) => sinks.get(d)!.unique().length >= traffic.assigned.get(d)!.size),
      'every accepted message to arrive',
      30_000,
    );
    await sleep(500);
    for (const d of DESTINATIONS) expectComplete(sinks.get(d)!, traffic.assigned.get(d)!);
    // Messages accepted after the restart were delivered too (covered above), by the same processes.
    for (const app of apps) expect(app.child.exitCode ?? app.child.signalCode, app.name).toBeNull();
    expect(ingest.logs.some((l) => l.msg === 'redis connection restored')).toBe(true);
    // Nothing left behind in Redis.
    expect(await harness.redis.xlen(harness.key('in'))).toBe(0);
    for (const d of DESTINATIONS) {
      expect(await harness.redis.hget(harness.key('pos'), d)).toBe(String(traffic.assigned.get(d)!.size));
    }
  });
});
