/**
 * A sequence that exists nowhere any more (lost in a Redis failover without WAIT, or trimmed by
 * hand) must not stall its destination forever: after the gap timeout the sender looks for it,
 * dead-letters it as GAP_LOST and applies the destination's onDeadLetter policy. A result that
 * turns up later for a skipped sequence goes to the dead-letter list as late, never delivered.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import { deadLetters, expectDelivered, Harness, pipelineConfig, TEST_TRANSFORM } from './helpers.js';

let h: Harness;
afterEach(async () => {
  await h?.cleanup();
});

/**
 * Accepts three messages with no worker running, then deletes the input entry of sequence 1 (as
 * if a failover had lost it), and starts a worker and a sender.
 */
async function loseFirstOfThree(onDeadLetter: 'block' | 'skip'): Promise<void> {
  const sink = await h.sink();
  const config = await h.config(
    pipelineConfig({ a: { url: sink.url, onDeadLetter } }, { sender: { leaseTtlMs: 1000, gapTimeoutMs: 800 } }),
  );
  const ingest = await h.start('ingest', config);
  for (const n of [1, 2, 3]) await h.send(ingest, { destination: 'a', payload: { n }, id: `m${n}` });
  const [first] = await h.redis.xrange(h.key('in'), '-', '+', 'COUNT', 1);
  expect(first?.[1]).toContain('m1');
  await h.redis.xdel(h.key('in'), first![0]);
  await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
  await h.start('resequencer-sender', config);
}

describe('gap timeout', () => {
  it('skip: a lost sequence becomes a GAP_LOST dead letter and the destination moves on', async () => {
    h = new Harness('gap skip', inject('redisUrl'));
    await loseFirstOfThree('skip');
    const sink = h.sinks[0]!;
    await waitFor(() => sink.unique().length === 2, 'sequences 2 and 3 to arrive', 20_000);
    expectDelivered(sink, [2, 3]);
    const [lost] = await deadLetters(h);
    expect(lost).toMatchObject({ d: 'a', s: '1', stage: 'gap' });
    expect(lost!.e).toMatch(/^GAP_LOST/);
    await waitFor(async () => (await h.redis.hget(h.key('pos'), 'a')) === '3', 'position 3 recorded', 5_000);

    // The lost message turns up after all (a worker that was paused, say): never delivered, but
    // kept as a late dead letter.
    await h.redis.xadd(h.key('res:a'), '*', 'k', 'v', 's', '1', 'm', 'm1', 't', '1', 'a', '1', 'p', '{"late":true}');
    await waitFor(async () => (await deadLetters(h)).some((d) => d.stage === 'late'), 'the late result', 10_000);
    await sleep(300);
    expectDelivered(sink, [2, 3]);
  });

  it('block: a lost sequence blocks the destination until an operator skips it', async () => {
    h = new Harness('gap block', inject('redisUrl'));
    await loseFirstOfThree('block');
    const sink = h.sinks[0]!;
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'a')) === '1', 'the block at 1', 20_000);
    await sleep(500);
    expect(sink.received).toEqual([]);
    const [lost] = await deadLetters(h);
    expect(lost).toMatchObject({ d: 'a', s: '1', stage: 'gap' });
    const sender = h.apps.find((a) => a.name === 'resequencer-sender')!;
    expect(sender.logs.some((l) => l.msg === 'sequence lost; handling it as a dead letter')).toBe(true);
  });

  it('a message that is only slow is not taken for lost', async () => {
    h = new Harness('gap slow', inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(
      pipelineConfig(
        { a: { url: sink.url, onDeadLetter: 'skip' } },
        {
          sender: { leaseTtlMs: 1000, gapTimeoutMs: 300 },
          transform: { maxAttempts: 8, retry: { baseMs: 500, maxMs: 500 } },
        },
      ),
    );
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    await h.start('resequencer-sender', config);
    // Sequence 1 fails its first six attempts (up to 500 ms of backoff before each retry): it
    // stays pending with the worker longer than the gap timeout, while 2 and 3 are ready.
    await h.send(ingest, { destination: 'a', payload: { n: 1, fail: 6 } });
    await h.send(ingest, { destination: 'a', payload: { n: 2 } });
    await h.send(ingest, { destination: 'a', payload: { n: 3 } });
    await waitFor(() => sink.unique().length === 3, 'all three', 20_000);
    expectDelivered(sink, [1, 2, 3]);
    expect(await deadLetters(h)).toEqual([]);
    const sender = h.apps.find((a) => a.name === 'resequencer-sender')!;
    expect(sender.logs.some((l) => l.msg === 'still waiting for the next sequence; it is on its way')).toBe(true);
  });
});
