/**
 * Batch delivery (`batch.maxMessages` on an HTTP destination) through the real apps: a backlog of
 * ready results reaches the destination as signed JSON arrays, every sequence once and in order,
 * while a destination without `batch` gets the contract's single payloads, unchanged; a batch that
 * fails is sent again with the same range; a batch the destination refuses for good is narrowed
 * down to the message it refuses, which alone becomes a dead letter.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyWebhook } from '@reseq/webhook-verify';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { Delivery, HttpSink } from '../fixtures/http-sink.js';
import { deadLetters, expectDelivered, Harness, pipelineConfig, range, TEST_TRANSFORM } from './helpers.js';

const SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;

/** One element of a batch body. */
interface Element {
  sequence: number;
  id: string;
  idempotencyKey: string;
  payload: { n: number; transformed: boolean; destination: string; sequence: number };
}

/** The elements of every batch the sink took, in arrival order. */
function elements(requests: readonly Delivery[]): Element[] {
  return requests.flatMap((d) => d.body as Element[]);
}

describe('batch delivery', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  /**
   * Ingest and a worker with `batched` (and optionally `single`) destinations; `count` messages are
   * sent and transformed before the sender starts, so a backlog of ready results awaits it.
   */
  async function backlog(
    name: string,
    count: number,
    batch: object,
    options: { single?: boolean; payload?: (n: number) => object; onDeadLetter?: 'skip' } = {},
  ): Promise<{ batched: HttpSink; single: HttpSink; config: string; ids: string[] }> {
    h = new Harness(name, inject('redisUrl'));
    const batched = await h.sink();
    const single = await h.sink();
    const file = pipelineConfig({
      batched: { url: batched.url, onDeadLetter: options.onDeadLetter },
      ...(options.single ? { single: { url: single.url } } : {}),
    }) as { destinations: Record<string, object> };
    file.destinations.batched = { ...file.destinations.batched, batch, secret: SECRET };
    const config = await h.config(file);
    const ingest: AppProcess = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    const destinations = options.single ? ['batched', 'single'] : ['batched'];
    const ids: string[] = [];
    for (let n = 1; n <= count; n++) {
      ids.push((await h.send(ingest, { destinations, payload: options.payload?.(n) ?? { n } })).id);
    }
    await waitFor(
      async () =>
        (await h.redis.xlen(h.key('in'))) === 0 &&
        (await h.redis.xlen(h.key('res:batched'))) === count &&
        (!options.single || (await h.redis.xlen(h.key('res:single'))) === count),
      'every message to be transformed',
    );
    return { batched, single, config, ids };
  }

  it('sends a backlog as signed arrays of up to maxMessages, each sequence once and in order; no batch, no change', async () => {
    const count = 120;
    // Every 7th message is dropped by the transform: a gap inside a batch, not the end of one.
    const dropped = (n: number) => n % 7 === 0;
    const { batched, single, config, ids } = await backlog(
      'batch backlog',
      count,
      { maxMessages: 50 },
      { single: true, payload: (n) => (dropped(n) ? { n, drop: true } : { n }) },
    );
    await h.start('resequencer-sender', config);
    const expected = range(1, count).filter((n) => !dropped(n));
    await waitFor(
      () => elements(batched.received).length >= expected.length && single.received.length >= expected.length,
      'every message at both destinations',
    );
    await sleep(300);

    // The batched destination: arrays only, every sequence once, in order.
    const requests = batched.received;
    expect(requests.every((d) => Array.isArray(d.body))).toBe(true);
    expect(elements(requests).map((e) => e.sequence)).toEqual(expected);
    const sizes = requests.map((d) => (d.body as Element[]).length);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(50);
    expect(requests.length).toBeLessThan(expected.length);
    // Dropped sequences sit inside batches rather than ending them.
    expect(
      requests.some((d) => (d.body as Element[]).some((e, i, all) => i > 0 && e.sequence > all[i - 1]!.sequence + 1)),
    ).toBe(true);
    for (const d of requests) {
      const body = d.body as Element[];
      const [first, last] = [body[0]!.sequence, body.at(-1)!.sequence];
      expect(d.headers['content-type']).toBe('application/json');
      expect(d.headers['reseq-sequence']).toBe(String(first));
      expect(d.headers['reseq-sequence-last']).toBe(String(last));
      expect(d.headers['idempotency-key']).toBe(`batched:${first}-${last}`);
      expect(verifyWebhook({ secret: SECRET, headers: d.headers, body: d.rawBody }).id).toBe(
        `batched:${first}-${last}`,
      );
      for (const e of body) {
        expect(e.id).toBe(ids[e.sequence - 1]);
        expect(e.idempotencyKey).toBe(`batched:${e.sequence}:${e.id}`);
        expect(e.payload).toEqual({ n: e.sequence, transformed: true, destination: 'batched', sequence: e.sequence });
      }
    }

    // The destination without batch: one payload per request, exactly as before.
    expectDelivered(single, expected);
    expect(single.received).toHaveLength(expected.length);
    for (const d of single.received) {
      expect(d.rawBody).toBe(
        JSON.stringify({ n: d.sequence, transformed: true, destination: 'single', sequence: d.sequence }),
      );
      expect(d.headers['idempotency-key']).toBe(`single:${d.sequence}:${ids[d.sequence - 1]}`);
      expect(d.headers['reseq-message-id']).toBe(ids[d.sequence - 1]);
      expect(d.headers['reseq-sequence-last']).toBeUndefined();
      expect(d.headers['webhook-signature']).toBeUndefined();
    }
  });

  it('sends a batch that failed again with the same range and body, after the backoff', async () => {
    const count = 30;
    const { batched, config } = await backlog('batch retry', count, { maxMessages: 10 });
    // Every request fails the first time its key is seen, and succeeds the second time.
    const attempts: { key: string; first: string; last: string; body: string; status: number }[] = [];
    batched.respond = (d) => {
      const key = d.idempotencyKey;
      const status = attempts.some((a) => a.key === key) ? 200 : 503;
      attempts.push({
        key,
        first: String(d.headers['reseq-sequence']),
        last: String(d.headers['reseq-sequence-last']),
        body: d.rawBody,
        status,
      });
      return status;
    };
    await h.start('resequencer-sender', config);
    await waitFor(() => elements(batched.received).length >= count, 'every message');
    await sleep(300);

    expect(elements(batched.received).map((e) => e.sequence)).toEqual(range(1, count));
    expect(batched.received.some((d) => (d.body as Element[]).length > 1)).toBe(true);
    expect(attempts.length).toBe(2 * batched.received.length);
    for (let i = 0; i < attempts.length; i += 2) {
      const [failed, again] = [attempts[i]!, attempts[i + 1]!];
      expect(failed.status).toBe(503);
      expect(again).toEqual({ ...failed, status: 200 });
    }
  });

  it('narrows a batch the destination refuses down to the refused message, which alone is dead-lettered', async () => {
    const count = 20;
    const { batched, config, ids } = await backlog(
      'batch refused',
      count,
      { maxMessages: 8 },
      { onDeadLetter: 'skip' },
    );
    // The destination refuses (422) any request that carries message 5.
    batched.respond = (d) => ((d.body as Element[]).some((e) => e.sequence === 5) ? 422 : 200);
    await h.start('resequencer-sender', config);
    const expected = range(1, count).filter((n) => n !== 5);
    await waitFor(() => elements(batched.received).length >= expected.length, 'every message but 5');
    await sleep(300);

    expect(elements(batched.received).map((e) => e.sequence)).toEqual(expected);
    const letters = await deadLetters(h);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ d: 'batched', s: '5', m: ids[4], stage: 'delivery' });
    expect(letters[0]!.e).toBe('DELIVERY_REJECTED: HTTP 422');
    expect(batched.received.some((d) => (d.body as Element[]).length > 1)).toBe(true);
  });
});
