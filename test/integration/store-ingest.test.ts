/**
 * The ingest script against a real Redis: the sequences a client is answered with, what lands
 * in the input stream, client-id de-duplication and the backlog limit.
 */
import { BacklogFullError, writeIngestBatch, type IngestRequest } from '@reseq/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INGEST, ingest, inputEntries, openStore, type StoreContext } from './store-context.js';

let ctx: StoreContext;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
});
afterEach(async () => {
  await ctx.close();
});

function message(id: string, destinations: string[], payload: unknown, clientId = true): IngestRequest {
  return { id, clientId, destinations, payload: JSON.stringify(payload) };
}

describe('writeIngestBatch: sequences', () => {
  it('numbers each destination 1, 2, 3, … without gaps, across batches, in request order', async () => {
    const first = await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [
        message('m1', ['billing'], { n: 1 }),
        message('m2', ['ledger'], { n: 2 }),
        message('m3', ['billing'], { n: 3 }),
        message('m4', ['billing'], { n: 4 }, false),
      ],
      INGEST,
    );
    const second = await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [message('m5', ['ledger'], { n: 5 }), message('m6', ['billing'], { n: 6 })],
      INGEST,
    );

    expect([...first, ...second].map((o) => o.sequences)).toEqual([
      { billing: 1 },
      { ledger: 1 },
      { billing: 2 },
      { billing: 3 },
      { ledger: 2 },
      { billing: 4 },
    ]);
    expect([...first, ...second].every((o) => !o.duplicate)).toBe(true);
    // What `status` shows as `assigned`.
    expect(await ctx.redis.hgetall(ctx.keys.sequences)).toEqual({ billing: '4', ledger: '2' });

    // The input stream holds one entry per message, each with the sequence it was answered with.
    const entries = await inputEntries(ctx);
    expect(entries.map((e): unknown[] => [e.id, e.destination, e.sequence, JSON.parse(e.payload)])).toEqual([
      ['m1', 'billing', 1, { n: 1 }],
      ['m2', 'ledger', 1, { n: 2 }],
      ['m3', 'billing', 2, { n: 3 }],
      ['m4', 'billing', 3, { n: 4 }],
      ['m5', 'ledger', 2, { n: 5 }],
      ['m6', 'billing', 4, { n: 6 }],
    ]);
  });

  it('gives out every sequence exactly once when several ingest processes write at the same time', async () => {
    const writers = await Promise.all([1, 2, 3, 4].map((n) => ctx.connect(`ingest-${n}`)));
    const batches = await Promise.all(
      writers.flatMap((redis, w) =>
        Array.from({ length: 10 }, (_, b) =>
          writeIngestBatch(
            redis,
            ctx.keys,
            Array.from({ length: 5 }, (_, i) => message(`w${w}-b${b}-${i}`, ['billing'], { w, b, i })),
            INGEST,
          ),
        ),
      ),
    );

    const sequences = batches.flat().map((o) => o.sequences.billing!);
    expect(sequences).toHaveLength(200);
    expect([...sequences].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    // Within one batch the sequences are consecutive: nobody else's message got in between.
    for (const batch of batches) {
      const own = batch.map((o) => o.sequences.billing!);
      expect(own).toEqual(own.map((_, i) => own[0]! + i));
    }
    // Stream order is sequence order, so workers see messages in the order they were accepted.
    expect((await inputEntries(ctx)).map((e) => e.sequence)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('gives a multi-destination message one sequence and one input entry per destination', async () => {
    await ingest(ctx, ['billing'], 'b1');
    await ingest(ctx, ['billing'], 'b2');
    await ingest(ctx, ['ledger'], 'l1');

    const outcome = await ingest(ctx, ['billing', 'ledger', 'audit'], { amount: 7 }, 'multi-1');
    expect(outcome).toEqual({ duplicate: false, sequences: { billing: 3, ledger: 2, audit: 1 } });

    const entries = (await inputEntries(ctx)).filter((e) => e.id === 'multi-1');
    expect(entries.map((e) => [e.destination, e.sequence])).toEqual([
      ['billing', 3],
      ['ledger', 2],
      ['audit', 1],
    ]);
    for (const entry of entries) expect(JSON.parse(entry.payload)).toEqual({ amount: 7 });
  });

  it('writes the entries of a multi-destination message together, never interleaved with a concurrent writer', async () => {
    const [a, b] = await Promise.all([ctx.connect('ingest-a'), ctx.connect('ingest-b')]);
    const destinations = ['d1', 'd2', 'd3'];
    await Promise.all(
      [a, b].flatMap((redis, w) =>
        Array.from({ length: 20 }, (_, i) =>
          writeIngestBatch(redis, ctx.keys, [message(`w${w}-${i}`, destinations, i)], INGEST),
        ),
      ),
    );

    const entries = await inputEntries(ctx);
    expect(entries).toHaveLength(120);
    for (let i = 0; i < entries.length; i += 3) {
      const group = entries.slice(i, i + 3);
      expect(group.map((e) => e.id)).toEqual([group[0]!.id, group[0]!.id, group[0]!.id]);
      expect(group.map((e) => e.destination)).toEqual(destinations);
      // A message has the same position in every destination's order.
      expect(new Set(group.map((e) => e.sequence)).size).toBe(1);
    }
  });
});

describe('writeIngestBatch: client retries', () => {
  it('answers a client id sent again in a later batch with the same sequences and writes nothing', async () => {
    const first = await ingest(ctx, ['billing', 'ledger'], { v: 1 }, 'order-42');
    await ingest(ctx, ['billing'], { v: 2 }, 'order-43');
    const lengthBefore = await ctx.redis.xlen(ctx.keys.input);
    const sequencesBefore = await ctx.redis.hgetall(ctx.keys.sequences);

    const retry = await ingest(ctx, ['billing', 'ledger'], { v: 1 }, 'order-42');

    expect(first).toEqual({ duplicate: false, sequences: { billing: 1, ledger: 1 } });
    expect(retry).toEqual({ duplicate: true, sequences: { billing: 1, ledger: 1 } });
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(lengthBefore);
    expect(await ctx.redis.hgetall(ctx.keys.sequences)).toEqual(sequencesBefore);
    expect((await inputEntries(ctx)).filter((e) => e.id === 'order-42')).toHaveLength(2);
  });

  it('answers a client id repeated inside one batch once, and the copies with the same sequences', async () => {
    const outcomes = await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [
        message('dup', ['billing', 'ledger'], 'first'),
        message('other', ['billing'], 'other'),
        message('dup', ['billing', 'ledger'], 'first'),
        message('dup', ['billing', 'ledger'], 'first'),
      ],
      INGEST,
    );

    expect(outcomes).toEqual([
      { duplicate: false, sequences: { billing: 1, ledger: 1 } },
      { duplicate: false, sequences: { billing: 2 } },
      { duplicate: true, sequences: { billing: 1, ledger: 1 } },
      { duplicate: true, sequences: { billing: 1, ledger: 1 } },
    ]);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(3);
    expect(await ctx.redis.hgetall(ctx.keys.sequences)).toEqual({ billing: '2', ledger: '1' });
  });

  it('does not de-duplicate ids that ingest made itself, and remembers client ids for the configured time', async () => {
    const outcomes = await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [message('same-generated', ['billing'], 1, false), message('same-generated', ['billing'], 2, false)],
      { idempotencyTtlSeconds: 120, maxBacklog: 1000, destinationWindow: 1000 },
    );
    expect(outcomes.map((o) => o.sequences.billing)).toEqual([1, 2]);
    expect(await ctx.redis.exists(ctx.keys.clientId('same-generated'))).toBe(0);

    await writeIngestBatch(ctx.redis, ctx.keys, [message('client-1', ['billing'], 3)], {
      idempotencyTtlSeconds: 120,
      maxBacklog: 1000,
      destinationWindow: 1000,
    });
    const ttl = await ctx.redis.ttl(ctx.keys.clientId('client-1'));
    expect(ttl).toBeGreaterThan(110);
    expect(ttl).toBeLessThanOrEqual(120);
  });
});

describe('writeIngestBatch: backlog limit', () => {
  it('refuses a batch with BACKLOG_FULL (429) once the input stream is at the limit, and writes nothing', async () => {
    const limits = { idempotencyTtlSeconds: 60, maxBacklog: 3, destinationWindow: 1000 };
    await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [message('a', ['billing'], 1), message('b', ['billing', 'ledger'], 2)],
      limits,
    );
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(3);
    const sequencesBefore = await ctx.redis.hgetall(ctx.keys.sequences);

    const refused = writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [message('c', ['billing'], 3), message('d', ['ledger'], 4, false)],
      limits,
    );
    await expect(refused).rejects.toBeInstanceOf(BacklogFullError);
    await expect(refused).rejects.toMatchObject({ code: 'BACKLOG_FULL', statusCode: 429, retryable: true });

    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(3);
    expect(await ctx.redis.hgetall(ctx.keys.sequences)).toEqual(sequencesBefore);
    // The refused client id is not remembered: its retry must be accepted, not answered as a duplicate.
    expect(await ctx.redis.exists(ctx.keys.clientId('c'))).toBe(0);

    // Workers drain the backlog; the client's retry is then accepted with the next sequence.
    const [oldest] = await inputEntries(ctx);
    await ctx.redis.xdel(ctx.keys.input, oldest!.entryId);
    const [retry] = await writeIngestBatch(ctx.redis, ctx.keys, [message('c', ['billing'], 3)], limits);
    expect(retry).toEqual({ duplicate: false, sequences: { billing: 3 } });
  });
});

describe('writeIngestBatch: destination window', () => {
  it('refuses only the messages of a destination whose window is full, and writes nothing for them', async () => {
    const limits = { idempotencyTtlSeconds: 60, maxBacklog: 1000, destinationWindow: 2 };
    await writeIngestBatch(ctx.redis, ctx.keys, [message('a', ['billing'], 1), message('b', ['billing'], 2)], limits);
    const before = await ctx.redis.xlen(ctx.keys.input);

    // billing has 2 accepted, 0 delivered: full. A message to billing and ledger is refused as a
    // whole; ledger alone still flows.
    const outcomes = await writeIngestBatch(
      ctx.redis,
      ctx.keys,
      [message('c', ['billing', 'ledger'], 3), message('d', ['ledger'], 4)],
      limits,
    );
    expect(outcomes[0]).toEqual({ duplicate: false, sequences: {}, windowFull: 'billing' });
    expect(outcomes[1]).toEqual({ duplicate: false, sequences: { ledger: 1 } });
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(before + 1);
    expect(await ctx.redis.exists(ctx.keys.clientId('c'))).toBe(0);

    // Once billing's delivered position moves, it takes messages again, with no gap.
    await ctx.redis.hset(ctx.keys.delivered, 'billing', 1);
    const [retry] = await writeIngestBatch(ctx.redis, ctx.keys, [message('c', ['billing', 'ledger'], 3)], limits);
    expect(retry).toEqual({ duplicate: false, sequences: { billing: 3, ledger: 2 } });
  });
});
