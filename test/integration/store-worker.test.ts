/**
 * The worker side of the store against a real Redis: the consumer group, reading new and own
 * pending entries, recording outcomes (results and dead letters) and taking over the entries
 * of stopped or crashed workers.
 */
import {
  WORKER_GROUP,
  claimIdle,
  completeBatch,
  deliveryCounts,
  discardEntries,
  ensureWorkerGroup,
  forgetIdleConsumers,
  handBackEntries,
  readInput,
  touchEntries,
  trimInput,
  type InputEntry,
  type ReseqRedis,
} from '@reseq/store';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fieldsOf, ingest, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
/** Connection reserved for XREADGROUP, as the worker keeps one. */
let blocking: ReseqRedis;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  blocking = await ctx.connect('blocking');
});
afterEach(async () => {
  await ctx.close();
});

/** XPENDING summary per consumer, as an operator sees it. */
async function pendingByConsumer(): Promise<Record<string, number>> {
  const [, , , consumers] = (await ctx.redis.xpending(ctx.keys.input, WORKER_GROUP)) as [
    number,
    string | null,
    string | null,
    [string, string][] | null,
  ];
  return Object.fromEntries((consumers ?? []).map(([name, count]) => [name, Number(count)]));
}

/** Owner of each pending entry (XPENDING extended form). */
async function owners(): Promise<Record<string, string>> {
  const rows = (await ctx.redis.xpending(ctx.keys.input, WORKER_GROUP, '-', '+', 1000)) as [
    string,
    string,
    number,
    number,
  ][];
  return Object.fromEntries(rows.map(([id, consumer]) => [id, consumer]));
}

/** Writes `n` messages to `destination` and creates the group. */
async function seed(n: number, destination = 'billing'): Promise<void> {
  for (let i = 1; i <= n; i++) await ingest(ctx, [destination], { n: i }, `msg-${destination}-${i}`);
  await ensureWorkerGroup(ctx.redis, ctx.keys);
}

async function readNew(consumer: string, count = 100): Promise<InputEntry[]> {
  return (await readInput(blocking, ctx.keys, consumer, '>', count, 100)).entries;
}

function value(entry: InputEntry, body: unknown, attempts = 1) {
  return { entry, kind: 'value' as const, attempts, body: JSON.stringify(body) };
}

describe('ensureWorkerGroup', () => {
  it('is idempotent and starts at the beginning, so messages accepted before any worker ran are read', async () => {
    await ingest(ctx, ['billing'], 'early-1', 'early-1');
    await ingest(ctx, ['ledger'], 'early-2', 'early-2');

    await ensureWorkerGroup(ctx.redis, ctx.keys);
    await ensureWorkerGroup(ctx.redis, ctx.keys);

    const groups = (await ctx.redis.xinfo('GROUPS', ctx.keys.input)) as unknown[][];
    expect(groups).toHaveLength(1);
    expect(fieldsOf(groups[0] as string[]).name).toBe(WORKER_GROUP);

    const read = await readNew('w1');
    expect(read.map((e) => [e.id, e.destination, e.sequence])).toEqual([
      ['early-1', 'billing', 1],
      ['early-2', 'ledger', 1],
    ]);

    // A worker starting later must not reset the group: nothing is handed out a second time.
    await ensureWorkerGroup(ctx.redis, ctx.keys);
    expect(await readNew('w2')).toEqual([]);
    expect(await pendingByConsumer()).toEqual({ w1: 2 });
  });

  it('creates the input stream when nothing was ingested yet', async () => {
    await ensureWorkerGroup(ctx.redis, ctx.keys);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(0);
    expect(await readNew('w1')).toEqual([]);
    await ingest(ctx, ['billing'], 'late', 'late');
    expect((await readNew('w1')).map((e) => e.id)).toEqual(['late']);
  });
});

describe('readInput', () => {
  it('gives a restarted consumer its own pending entries back, page by page, and no one else’s', async () => {
    await seed(5);
    const first = await readNew('w1', 5);
    expect(first.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5]);
    await ingest(ctx, ['billing'], 'for-w2', 'for-w2');
    expect((await readNew('w2')).map((e) => e.id)).toEqual(['for-w2']);

    // w1 restarts (new connection, same consumer name) and pages through its pending list.
    const restarted = await ctx.connect('blocking-restarted');
    const pages: number[][] = [];
    let from = '0';
    for (;;) {
      const page = await readInput(restarted, ctx.keys, 'w1', from, 2, 100);
      if (page.lastId === undefined) break;
      pages.push(page.entries.map((e) => e.sequence));
      from = page.lastId;
    }
    expect(pages).toEqual([[1, 2], [3, 4], [5]]);

    // Payloads come back intact, not just ids.
    const again = await readInput(restarted, ctx.keys, 'w1', '0', 10, 100);
    expect(again.entries).toEqual(first);
    // Re-reading does not move anything between consumers.
    expect(await pendingByConsumer()).toEqual({ w1: 5, w2: 1 });
  });

  it('stops handing back an entry once it was completed', async () => {
    await seed(3);
    const [e1, e2, e3] = await readNew('w1');
    await completeBatch(ctx.redis, ctx.keys, [value(e2!, 'done')]);
    const pending = await readInput(blocking, ctx.keys, 'w1', '0', 10, 100);
    expect(pending.entries.map((e) => e.entryId)).toEqual([e1!.entryId, e3!.entryId]);
  });

  it('reports entries that are not messages as malformed, and discardEntries removes them for good', async () => {
    await seed(1);
    const foreign = await ctx.redis.xadd(ctx.keys.input, '*', 'hello', 'world');
    await ingest(ctx, ['billing'], 'after', 'after');

    const read = await readInput(blocking, ctx.keys, 'w1', '>', 10, 100);
    expect(read.entries.map((e) => e.id)).toEqual(['msg-billing-1', 'after']);
    expect(read.malformed).toEqual([foreign]);
    expect(read.lastId).toBe(read.entries[1]!.entryId);

    await discardEntries(ctx.redis, ctx.keys, read.malformed);
    expect(await ctx.redis.xrange(ctx.keys.input, foreign!, foreign!)).toEqual([]);
    expect(Object.keys(await owners())).not.toContain(foreign);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(2);
  });
});

describe('completeBatch', () => {
  it('acknowledges each input entry, trims it off the input stream and appends its result to its destination’s result stream', async () => {
    await ingest(ctx, ['billing', 'ledger'], { amount: 5 }, 'pay-1');
    await ingest(ctx, ['billing'], { amount: 6 }, 'pay-2');
    await ensureWorkerGroup(ctx.redis, ctx.keys);
    const [b1, l1, b2] = await readNew('w1');

    const outcome = await completeBatch(
      ctx.redis,
      ctx.keys,
      [value(b2!, { cents: 600 }, 2), value(b1!, { cents: 500 }), { entry: l1!, kind: 'none', attempts: 1, body: '' }],
      1_700_000_000_000,
    );

    expect(outcome).toEqual({ written: 3, duplicates: 0 });
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(0);
    expect(await pendingByConsumer()).toEqual({});

    const billing = await resultEntries(ctx, 'billing');
    // Completion order, not sequence order: putting them in order is the sender's job.
    expect(billing.map(({ entryId: _, ...r }) => r)).toEqual([
      { kind: 'value', id: 'pay-2', sequence: 2, acceptedAt: b2!.acceptedAt, attempts: 2, body: '{"cents":600}' },
      { kind: 'value', id: 'pay-1', sequence: 1, acceptedAt: b1!.acceptedAt, attempts: 1, body: '{"cents":500}' },
    ]);
    const ledger = await resultEntries(ctx, 'ledger');
    expect(ledger.map(({ entryId: _, ...r }) => r)).toEqual([
      { kind: 'none', id: 'pay-1', sequence: 1, acceptedAt: l1!.acceptedAt, attempts: 1, body: '' },
    ]);
    expect(await ctx.redis.xlen(ctx.keys.deadLetters)).toBe(0);
  });

  it('keeps entries settled behind one still in flight until it settles, and never trims an unread one', async () => {
    await seed(5);
    const [e1, e2, e3] = await readNew('w1', 3);
    const ids = async () => (await ctx.redis.xrange(ctx.keys.input, '-', '+')).map(([id]) => id);
    const all = await ids();

    // e1 still runs: e2 and e3 are settled but stay behind it, with the two unread ones.
    expect(await completeBatch(ctx.redis, ctx.keys, [value(e3!, 3), value(e2!, 2)])).toEqual({
      written: 2,
      duplicates: 0,
    });
    expect(await ids()).toEqual(all);

    // e1 settles: nothing is pending, so everything handed out goes and the unread two stay.
    await completeBatch(ctx.redis, ctx.keys, [value(e1!, 1)]);
    expect(await ids()).toEqual(all.slice(3));
    // A repeated call (a retry after a lost reply) acknowledges nothing and trims nothing.
    expect(await completeBatch(ctx.redis, ctx.keys, [value(e1!, 1)])).toEqual({ written: 0, duplicates: 1 });
    expect(await ids()).toEqual(all.slice(3));

    const rest = await readNew('w2');
    expect(rest.map((e) => (JSON.parse(e.payload) as { n: number }).n)).toEqual([4, 5]);
    await completeBatch(ctx.redis, ctx.keys, [value(rest[1]!, 5)]);
    expect(await ids()).toEqual(all.slice(3));
    await completeBatch(ctx.redis, ctx.keys, [value(rest[0]!, 4)]);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(0);
    // Nothing was lost on the way: every result is in the result stream, once.
    expect((await resultEntries(ctx, 'billing')).map((r) => r.sequence).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('writes the result of an entry completed twice (a recovered worker finishing late) only once', async () => {
    await seed(2);
    const [slow1, slow2] = await readNew('slow');
    // `fast` takes both over and finishes first.
    const claimed = await claimIdle(ctx.redis, ctx.keys, 'fast', 0, '0-0', 10);
    expect(claimed.entries.map((e) => e.entryId)).toEqual([slow1!.entryId, slow2!.entryId]);
    expect(await completeBatch(ctx.redis, ctx.keys, [value(claimed.entries[0]!, 'fast')])).toEqual({
      written: 1,
      duplicates: 0,
    });

    // The slow worker now completes both: one is a duplicate, the other is still its to record.
    const late = await completeBatch(ctx.redis, ctx.keys, [value(slow1!, 'slow'), value(slow2!, 'slow')]);
    expect(late).toEqual({ written: 1, duplicates: 1 });
    // And the same call repeated (a retry after a lost reply) writes nothing at all.
    expect(await completeBatch(ctx.redis, ctx.keys, [value(slow1!, 'slow'), value(slow2!, 'slow')])).toEqual({
      written: 0,
      duplicates: 2,
    });

    const results = await resultEntries(ctx, 'billing');
    expect(results.map((r) => [r.sequence, r.body])).toEqual([
      [1, '"fast"'],
      [2, '"slow"'],
    ]);
  });

  it('puts a dead letter in the dead-letter stream with destination, sequence, id, payload, attempts and error', async () => {
    const payload = { order: 'ö-1', note: 'line one\nline two' };
    await ingest(ctx, ['ledger'], 'before', 'before');
    await ingest(ctx, ['billing', 'ledger'], payload, 'poison-1');
    await ensureWorkerGroup(ctx.redis, ctx.keys);
    const entries = await readNew('w1');
    const poison = entries.find((e) => e.id === 'poison-1' && e.destination === 'ledger')!;

    const dead = { entry: poison, kind: 'dead' as const, attempts: 5, body: 'TypeError: cannot read x' };
    expect(await completeBatch(ctx.redis, ctx.keys, [dead], 1_700_000_123_456)).toEqual({
      written: 1,
      duplicates: 0,
    });
    // Completed twice: still one dead letter.
    await completeBatch(ctx.redis, ctx.keys, [dead], 1_700_000_123_457);

    const dlq = await ctx.redis.xrange(ctx.keys.deadLetters, '-', '+');
    expect(dlq).toHaveLength(1);
    expect(fieldsOf(dlq[0]![1])).toEqual({
      d: 'ledger',
      s: '2',
      m: 'poison-1',
      a: '5',
      e: 'TypeError: cannot read x',
      t: String(poison.acceptedAt),
      at: '1700000123456',
      p: JSON.stringify(payload),
    });
    // The sender learns of it in order, through the result stream.
    const results = await resultEntries(ctx, 'ledger');
    expect(results.map(({ entryId: _, ...r }) => r)).toEqual([
      {
        kind: 'dead',
        id: 'poison-1',
        sequence: 2,
        acceptedAt: poison.acceptedAt,
        attempts: 5,
        body: 'TypeError: cannot read x',
      },
    ]);
    expect(await resultEntries(ctx, 'billing')).toEqual([]);
  });
});

describe('taking over entries', () => {
  it('claimIdle takes entries idle in another consumer’s pending list after minIdle, not before', async () => {
    await seed(3);
    const read = await readNew('crashed');

    const early = await claimIdle(ctx.redis, ctx.keys, 'rescuer', 300, '0-0', 10);
    expect(early.entries).toEqual([]);
    expect(early.cursor).toBe('0-0');
    expect(await pendingByConsumer()).toEqual({ crashed: 3 });

    await sleep(400);
    const late = await claimIdle(ctx.redis, ctx.keys, 'rescuer', 300, '0-0', 10);
    expect(late.entries).toEqual(read);
    expect(late.deleted).toEqual([]);
    expect(late.cursor).toBe('0-0');
    expect(await pendingByConsumer()).toEqual({ rescuer: 3 });
  });

  it('pages through a long pending list with the cursor', async () => {
    await seed(5);
    await readNew('crashed');
    const seen: number[] = [];
    let cursor = '0-0';
    let steps = 0;
    do {
      const step = await claimIdle(ctx.redis, ctx.keys, 'rescuer', 0, cursor, 2);
      seen.push(...step.entries.map((e) => e.sequence));
      cursor = step.cursor;
      steps++;
    } while (cursor !== '0-0' && steps < 10);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(steps).toBe(3);
  });

  it('reports a pending entry deleted from the stream once, and does not hand it out again', async () => {
    await seed(3);
    const [e1, e2, e3] = await readNew('crashed');
    await ctx.redis.xdel(ctx.keys.input, e2!.entryId);

    const first = await claimIdle(ctx.redis, ctx.keys, 'rescuer', 0, '0-0', 10);
    expect(first.entries.map((e) => e.entryId)).toEqual([e1!.entryId, e3!.entryId]);
    expect(first.deleted).toEqual([e2!.entryId]);
    expect(first.malformed).toEqual([]);

    // Redis 7 took it off the pending list: the next scan neither returns nor reports it.
    const second = await claimIdle(ctx.redis, ctx.keys, 'other', 0, '0-0', 10);
    expect(second.entries.map((e) => e.entryId)).toEqual([e1!.entryId, e3!.entryId]);
    expect(second.deleted).toEqual([]);
    expect(Object.keys(await owners()).sort()).toEqual([e1!.entryId, e3!.entryId].sort());
  });

  it('shows a restarted consumer a deleted pending entry as malformed, so it can be discarded', async () => {
    await seed(2);
    const [e1, e2] = await readNew('w1');
    await ctx.redis.xdel(ctx.keys.input, e1!.entryId);

    const pending = await readInput(blocking, ctx.keys, 'w1', '0', 10, 100);
    expect(pending.entries.map((e) => e.entryId)).toEqual([e2!.entryId]);
    expect(pending.malformed).toEqual([e1!.entryId]);

    await discardEntries(ctx.redis, ctx.keys, pending.malformed);
    const after = await readInput(blocking, ctx.keys, 'w1', '0', 10, 100);
    expect(after.malformed).toEqual([]);
    expect(after.entries.map((e) => e.entryId)).toEqual([e2!.entryId]);
  });

  it('deliveryCounts reports how often each entry was handed out, increasing with every takeover', async () => {
    await seed(2);
    const [e1, e2] = await readNew('a');
    const ids = [e2!.entryId, e1!.entryId];
    expect(await deliveryCounts(ctx.redis, ctx.keys, 'a', ids)).toEqual(
      new Map([
        [e1!.entryId, 1],
        [e2!.entryId, 1],
      ]),
    );

    await claimIdle(ctx.redis, ctx.keys, 'b', 0, '0-0', 1); // only e1 moves to b
    expect(await deliveryCounts(ctx.redis, ctx.keys, 'b', ids)).toEqual(new Map([[e1!.entryId, 2]]));
    // Counts are per consumer: a's list holds only e2 now.
    expect(await deliveryCounts(ctx.redis, ctx.keys, 'a', ids)).toEqual(new Map([[e2!.entryId, 1]]));

    await claimIdle(ctx.redis, ctx.keys, 'c', 0, '0-0', 10);
    expect(await deliveryCounts(ctx.redis, ctx.keys, 'c', ids)).toEqual(
      new Map([
        [e1!.entryId, 3],
        [e2!.entryId, 2],
      ]),
    );
  });

  it('deliveryCounts finds the asked entries among many others the consumer holds', async () => {
    await seed(30);
    const entries = await readNew('a');
    // A worker asks about two entries it just took over, with 28 of its own running between them.
    const asked = [entries[0]!.entryId, entries[29]!.entryId];
    const counts = await deliveryCounts(ctx.redis, ctx.keys, 'a', asked);
    expect(counts).toEqual(new Map(asked.map((id) => [id, 1])));
  });

  it('touchEntries keeps a live worker’s long transform from being taken over', async () => {
    await seed(2);
    const [kept, abandoned] = await readNew('busy');
    await sleep(400);
    await touchEntries(ctx.redis, ctx.keys, 'busy', [kept!.entryId]);

    const claimed = await claimIdle(ctx.redis, ctx.keys, 'rescuer', 300, '0-0', 10);
    expect(claimed.entries.map((e) => e.entryId)).toEqual([abandoned!.entryId]);
    expect(await owners()).toEqual({ [kept!.entryId]: 'busy', [abandoned!.entryId]: 'rescuer' });
    // Touching is not a delivery: the crash-loop counter does not move.
    expect(await deliveryCounts(ctx.redis, ctx.keys, 'busy', [kept!.entryId])).toEqual(new Map([[kept!.entryId, 1]]));
  });

  it('handBackEntries makes entries claimable at once instead of after the idle timeout', async () => {
    await seed(3);
    const [e1, e2, e3] = await readNew('stopping');
    const idleMs = 60_000;
    expect((await claimIdle(ctx.redis, ctx.keys, 'peer', idleMs, '0-0', 10)).entries).toEqual([]);

    await handBackEntries(ctx.redis, ctx.keys, 'stopping', [e1!.entryId, e3!.entryId], idleMs);

    const claimed = await claimIdle(ctx.redis, ctx.keys, 'peer', idleMs, '0-0', 10);
    expect(claimed.entries.map((e) => e.entryId)).toEqual([e1!.entryId, e3!.entryId]);
    expect(await owners()).toEqual({
      [e1!.entryId]: 'peer',
      [e2!.entryId]: 'stopping',
      [e3!.entryId]: 'peer',
    });
  });
});

describe('trimInput', () => {
  it('trims below the oldest entry still pending or unread, never a needed one', async () => {
    await seed(5);
    const read = await readInput(blocking, ctx.keys, 'w1', '>', 3, 100);
    const [e1, e2, e3] = read.entries.map((e) => e.entryId);
    // Acknowledged without being deleted (a foreign consumer, an operator): only these may go.
    await ctx.redis.xack(ctx.keys.input, WORKER_GROUP, e1!);
    expect(await trimInput(ctx.redis, ctx.keys)).toBe(1);
    expect((await ctx.redis.xrange(ctx.keys.input, '-', '+')).map(([id]) => id)[0]).toBe(e2);

    // Nothing pending: the bound is the first unread entry; the two unread ones stay.
    await ctx.redis.xack(ctx.keys.input, WORKER_GROUP, e2!, e3!);
    expect(await trimInput(ctx.redis, ctx.keys)).toBe(2);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(2);
    const rest = await readInput(blocking, ctx.keys, 'w1', '>', 10, 100);
    expect(rest.entries.map((e) => (JSON.parse(e.payload) as { n: number }).n)).toEqual([4, 5]);
    expect(await trimInput(ctx.redis, ctx.keys)).toBe(0);
  });
});

describe('forgetIdleConsumers', () => {
  /** Consumer names in the group, as `XINFO CONSUMERS` lists them. */
  async function consumerNames(): Promise<string[]> {
    const rows = (await ctx.redis.xinfo('CONSUMERS', ctx.keys.input, WORKER_GROUP)) as (string | number)[][];
    return rows.map((flat) => String(flat[flat.indexOf('name') + 1])).sort();
  }

  it('removes the consumers that hold nothing and are idle, never one with pending entries or the caller', async () => {
    await seed(3);
    // 'crashed' holds an entry, 'stopped' finished its own, 'self' is the caller.
    const held = await readInput(blocking, ctx.keys, 'crashed', '>', 1, 100);
    const done = await readInput(blocking, ctx.keys, 'stopped', '>', 1, 100);
    await ctx.redis.xack(ctx.keys.input, WORKER_GROUP, done.entries[0]!.entryId);
    await readInput(blocking, ctx.keys, 'self', '>', 1, 100);
    await ctx.redis.xack(ctx.keys.input, WORKER_GROUP, ...(await owned('self')));
    expect(await consumerNames()).toEqual(['crashed', 'self', 'stopped']);

    // Not idle long enough: nothing goes.
    expect(await forgetIdleConsumers(ctx.redis, ctx.keys, 'self', 3_600_000)).toEqual([]);
    await sleep(20);
    expect(await forgetIdleConsumers(ctx.redis, ctx.keys, 'self', 10)).toEqual(['stopped']);
    expect(await consumerNames()).toEqual(['crashed', 'self']);
    // The crashed worker's entry is still pending, for a takeover.
    expect(await pendingByConsumer()).toEqual({ crashed: 1 });
    expect((await owners())[held.entries[0]!.entryId]).toBe('crashed');
  });
});

/** The entries a consumer holds. */
async function owned(consumer: string): Promise<string[]> {
  return Object.entries(await owners())
    .filter(([, owner]) => owner === consumer)
    .map(([id]) => id);
}
