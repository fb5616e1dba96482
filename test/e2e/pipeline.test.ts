/**
 * The whole pipeline as a user runs it: ingest, three transform workers and a sender as real
 * processes, four HTTP destinations, a transform with random delays, 2,400 messages over HTTP
 * (some to several destinations), and a worker SIGKILLed in the middle. Every destination must
 * receive every message once (after Idempotency-Key de-duplication), in order, with contiguous
 * sequences matching what ingest answered.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { startApp, waitFor, writeConfig, fixturePath, type AppProcess, type TempConfig } from '../fixtures/apps.js';
import { startHttpSink, type HttpSink } from '../fixtures/http-sink.js';
import { deleteKeys, uniquePrefix } from '../fixtures/redis.js';

const DESTINATIONS = ['billing', 'ledger', 'audit', 'search'] as const;
const MESSAGES = 2400;
const IN_FLIGHT = 48;

describe('pipeline end to end', () => {
  const prefix = uniquePrefix('e2e');
  const redisUrl = inject('redisUrl');
  const sinks = new Map<string, HttpSink>();
  const apps: AppProcess[] = [];
  let config: TempConfig;
  let ingestUrl: string;

  beforeAll(async () => {
    for (const d of DESTINATIONS) sinks.set(d, await startHttpSink());
    config = await writeConfig({
      destinations: Object.fromEntries(DESTINATIONS.map((d) => [d, { type: 'http', url: sinks.get(d)!.url }])),
      worker: { claimIdleMs: 1500, claimIntervalMs: 300 },
      sender: { leaseTtlMs: 3000 },
    });
    const env = { REDIS_URL: redisUrl, RESEQ_PREFIX: prefix, RESEQ_CONFIG: config.path };
    const ingest = await startApp('ingest', { env: { ...env, HTTP_PORT: '0' } });
    apps.push(ingest);
    const listening = await ingest.waitForLog((l) => l.msg === 'ingest listening');
    ingestUrl = `http://127.0.0.1:${String(listening.port)}/v1/messages`;
    for (const n of [1, 2, 3]) {
      apps.push(
        await startApp('transform-worker', {
          env: {
            ...env,
            RESEQ_CONSUMER_NAME: `e2e-worker-${n}`,
            WORKER_CONCURRENCY: '32',
            TRANSFORM_MODULE: fixturePath('transforms', 'random-delay.mjs'),
            RESEQ_TEST_MAX_DELAY_MS: '40',
          },
        }),
      );
    }
    apps.push(await startApp('resequencer-sender', { env }));
  });

  afterAll(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await Promise.all([...sinks.values()].map((s) => s.close()));
    const redis = new Redis(redisUrl);
    await deleteKeys(redis, prefix);
    redis.disconnect();
    await config?.remove();
  });

  it('delivers every message once, in order, to every destination, through a worker SIGKILL', async () => {
    // What ingest answered: per destination, sequence -> message id.
    const assigned = new Map<string, Map<number, string>>(DESTINATIONS.map((d) => [d, new Map()]));
    let next = 0;
    let killed = false;

    const send = async (i: number): Promise<void> => {
      const id = `m-${i}-${randomUUID().slice(0, 8)}`;
      // Every message goes to one destination; every fifth also to a second one.
      const targets = [DESTINATIONS[i % 4]!, ...(i % 5 === 0 ? [DESTINATIONS[(i + 1) % 4]!] : [])];
      const body = JSON.stringify({ id, destinations: targets, payload: { i } });
      for (;;) {
        const res = await fetch(ingestUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        if (res.status === 202) {
          const answer = (await res.json()) as { id: string; sequences: Record<string, number> };
          expect(answer.id).toBe(id);
          expect(Object.keys(answer.sequences).sort()).toEqual([...targets].sort());
          for (const [d, seq] of Object.entries(answer.sequences)) assigned.get(d)!.set(seq, id);
          return;
        }
        // 429/503 are retryable with the same id; nothing else is expected here.
        expect([429, 503]).toContain(res.status);
      }
    };

    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < MESSAGES) {
          const i = next++;
          if (i === Math.floor(MESSAGES / 3) && !killed) {
            killed = true;
            // A worker dies with transforms in flight and results unacknowledged.
            expect(await apps[1]!.kill()).toBe('SIGKILL');
          }
          await send(i);
        }
      }),
    );
    expect(killed).toBe(true);

    const total = [...assigned.values()].reduce((n, m) => n + m.size, 0);
    expect(total).toBe(MESSAGES + MESSAGES / 5);
    await waitFor(
      () => DESTINATIONS.every((d) => sinks.get(d)!.unique().length >= assigned.get(d)!.size),
      'every destination to receive every message',
      90_000,
    );

    for (const d of DESTINATIONS) {
      const sink = sinks.get(d)!;
      const expected = assigned.get(d)!;
      const unique = sink.unique();
      // Contiguous sequences 1..n, in order, each once.
      expect(unique.map((x) => x.sequence)).toEqual(Array.from({ length: expected.size }, (_, k) => k + 1));
      // Each sequence carries the message ingest gave it, transformed.
      for (const delivery of unique) {
        expect(delivery.messageId).toBe(expected.get(delivery.sequence));
        expect(delivery.body).toMatchObject({ transformed: true, destination: d, sequence: delivery.sequence });
      }
      // On the wire, with redeliveries: never a lower sequence after a higher one, except the
      // same message again right after itself.
      const raw = sink.received.map((x) => x.sequence);
      for (let k = 1; k < raw.length; k++) expect([raw[k - 1], raw[k - 1]! + 1]).toContain(raw[k]);
    }
    // The worker took over what the killed one held.
    const claimed = apps
      .slice(2, 4)
      .some((w) => w.logs.some((l) => l.msg === 'took over entries left idle by a stopped or crashed worker'));
    expect(claimed).toBe(true);
  });

  it('stops every app with exit code 0 on SIGTERM', async () => {
    const codes = await Promise.all(
      apps.filter((a) => a.child.exitCode === null && a.child.signalCode === null).map((a) => a.stop()),
    );
    expect(codes.length).toBe(apps.length - 1);
    expect(codes.every((c) => c === 0)).toBe(true);
  });
});
