/**
 * The sender side of the store against a real Redis: reading results, moving them into the
 * reorder buffer under the lease, recording delivery progress (fenced) and loading a
 * destination's state after a takeover.
 */
import {
  acquireLeases,
  advanceDelivered,
  bufferResults,
  completeBatch,
  deadLetterDelivery,
  ensureWorkerGroup,
  loadLaneState,
  markBlocked,
  readBlocked,
  readInput,
  readResults,
  ResultStreams,
  writesLeftProcess,
  createRedis,
  connectRedis,
  type Outcome,
  type ReseqRedis,
  type Result,
  type ResultEntry,
} from '@reseq/store';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createLogger } from '@reseq/runtime';
import { fieldsOf, ingest, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
/** Connection reserved for XREAD / XREADGROUP BLOCK. */
let blocking: ReseqRedis;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  blocking = await ctx.connect('blocking');
});
afterEach(async () => {
  await ctx.close();
});

const TTL = 30_000;

async function lease(destination: string, sender = 'sender-a', redis: ReseqRedis = ctx.redis): Promise<string> {
  const held = await acquireLeases(redis, ctx.keys, sender, [destination], TTL, 1);
  const value = held.get(destination);
  if (!value) throw new Error(`${sender} could not take the lease of ${destination}`);
  return value;
}

/**
 * Runs `count` messages to `destination` through ingest and a worker, completing them in the
 * given order of sequences (transformed payload `{ t: <sequence> }`), and returns the results
 * as the sender reads them.
 */
async function produce(destination: string, count: number, completionOrder?: number[]): Promise<ResultEntry[]> {
  const before = await ctx.redis.xlen(ctx.keys.results(destination));
  for (let i = 0; i < count; i++) await ingest(ctx, [destination], { i }, `${destination}-${Math.random()}`);
  await ensureWorkerGroup(ctx.redis, ctx.keys);
  const { entries } = await readInput(blocking, ctx.keys, 'w', '>', 1000, 100);
  const bySequence = new Map(entries.map((e) => [e.sequence, e]));
  const order = completionOrder ?? entries.map((e) => e.sequence);
  const outcomes: Outcome[] = order.map((seq) => ({
    entry: bySequence.get(seq)!,
    kind: 'value',
    attempts: 1,
    body: JSON.stringify({ t: seq }),
  }));
  await completeBatch(ctx.redis, ctx.keys, outcomes);
  const all = await resultEntries(ctx, destination);
  return all.slice(before);
}

function batch(leaseValue: string, entries: readonly ResultEntry[], malformed: readonly string[] = []) {
  return { leaseValue, entries, malformed };
}

async function bufferedSequences(destination: string): Promise<number[]> {
  return (await ctx.redis.hkeys(ctx.keys.buffer(destination))).map(Number).sort((a, b) => a - b);
}

describe('readResults', () => {
  it('reads each destination’s results from its cursor, in completion order', async () => {
    await produce('billing', 3, [2, 3, 1]);
    await produce('ledger', 1);

    const streams = new ResultStreams(ctx.keys, ['billing', 'ledger', 'idle']);
    const read = await readResults(blocking, streams, ['0-0', '0-0', '0-0'], 100, 100);
    expect([...read.keys()].sort()).toEqual(['billing', 'ledger']);
    const billing = read.get('billing')!;
    expect(billing.entries.map((e) => e.sequence)).toEqual([2, 3, 1]);
    expect(billing.lastId).toBe(billing.entries[2]!.entryId);

    // From the last id on there is nothing new: the read blocks and comes back empty.
    const next = await readResults(blocking, new ResultStreams(ctx.keys, ['billing']), [billing.lastId], 100, 100);
    expect(next.size).toBe(0);
  });

  it('takes each cursor as the position of the destination in the same place', async () => {
    await produce('billing', 3);
    await produce('ledger', 2);
    const all = await readResults(
      blocking,
      new ResultStreams(ctx.keys, ['billing', 'ledger']),
      ['0-0', '0-0'],
      100,
      100,
    );
    const billingIds = all.get('billing')!.entries.map((e) => e.entryId);
    const ledgerIds = all.get('ledger')!.entries.map((e) => e.entryId);

    // ledger first this time: billing from its second entry on, ledger from the start.
    const read = await readResults(
      blocking,
      new ResultStreams(ctx.keys, ['ledger', 'billing']),
      ['0-0', billingIds[1]!],
      100,
      100,
    );
    expect(read.get('billing')!.entries.map((e) => e.entryId)).toEqual(billingIds.slice(2));
    expect(read.get('ledger')!.entries.map((e) => e.entryId)).toEqual(ledgerIds);
    await expect(readResults(blocking, new ResultStreams(ctx.keys, ['billing']), [], 1, 1)).rejects.toThrow(
      /0 cursors for 1 streams/,
    );
  });
});

describe('bufferResults', () => {
  it('moves results into the reorder buffer and deletes them from the result stream', async () => {
    const leaseValue = await lease('billing');
    const results = await produce('billing', 3, [3, 1, 2]);

    const outcome = await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(leaseValue, results)]]));

    expect(outcome).toEqual(new Map([['billing', 0]]));
    expect(await ctx.redis.xlen(ctx.keys.results('billing'))).toBe(0);
    expect(await bufferedSequences('billing')).toEqual([1, 2, 3]);
    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.buffered.sort((a, b) => a.sequence - b.sequence).map((r) => [r.sequence, r.kind, r.body])).toEqual([
      [1, 'value', '{"t":1}'],
      [2, 'value', '{"t":2}'],
      [3, 'value', '{"t":3}'],
    ]);
  });

  it('drops duplicates (at or below delivered, or already buffered) and still removes them from the stream', async () => {
    const leaseValue = await lease('billing');
    const firstFour = await produce('billing', 4);
    await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(leaseValue, firstFour.slice(0, 3))]]));
    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue, from: 1, to: 2 }]),
    ).toEqual(['recorded']);

    // A recovered worker's late copies of 1 (delivered) and 3 (buffered) arrive with 4 (new).
    const late = await Promise.all(
      [1, 3].map(async (seq) => {
        const id = await ctx.redis.xadd(
          ctx.keys.results('billing'),
          '*',
          'k',
          'v',
          's',
          seq,
          'm',
          `late-${seq}`,
          't',
          0,
          'a',
          2,
          'p',
          '"late copy"',
        );
        return {
          entryId: id!,
          kind: 'value' as const,
          id: `late-${seq}`,
          sequence: seq,
          acceptedAt: 0,
          attempts: 2,
          body: '"late copy"',
        };
      }),
    );
    const outcome = await bufferResults(
      ctx.redis,
      ctx.keys,
      new Map([['billing', batch(leaseValue, [...late, firstFour[3]!])]]),
    );

    expect(outcome).toEqual(new Map([['billing', 2]]));
    expect(await ctx.redis.xlen(ctx.keys.results('billing'))).toBe(0);
    expect(await bufferedSequences('billing')).toEqual([3, 4]);
    // The first copy of 3 stays; the late one did not overwrite it.
    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.buffered.find((r) => r.sequence === 3)?.body).toBe('{"t":3}');
  });

  it('returns -1 and leaves the stream untouched for a destination whose lease the caller does not hold', async () => {
    const stale = await lease('billing');
    const ledgerLease = await lease('ledger');
    const billing = await produce('billing', 2);
    const ledger = await produce('ledger', 1);
    // The lease moves on to another sender (token 2) while this one still has a batch in hand.
    await ctx.redis.del(ctx.keys.lease('billing'));
    const current = await lease('billing', 'sender-b', await ctx.connect('sender-b'));
    expect(current).toBe('sender-b|2');

    const outcome = await bufferResults(
      ctx.redis,
      ctx.keys,
      new Map([
        ['billing', batch(stale, billing)],
        ['ledger', batch(ledgerLease, ledger)],
      ]),
    );

    expect(outcome).toEqual(
      new Map([
        ['billing', -1],
        ['ledger', 0],
      ]),
    );
    expect((await resultEntries(ctx, 'billing')).map((e) => e.entryId)).toEqual(billing.map((e) => e.entryId));
    expect(await ctx.redis.exists(ctx.keys.buffer('billing'))).toBe(0);
    // The other destination of the same call was handled.
    expect(await ctx.redis.xlen(ctx.keys.results('ledger'))).toBe(0);
    expect(await bufferedSequences('ledger')).toEqual([1]);
  });

  it('deletes malformed result entries without buffering them', async () => {
    const leaseValue = await lease('billing');
    const [good] = await produce('billing', 1);
    const junk = await ctx.redis.xadd(ctx.keys.results('billing'), '*', 'foo', 'bar');

    const read = await readResults(blocking, new ResultStreams(ctx.keys, ['billing']), ['0-0'], 100, 100);
    const billing = read.get('billing')!;
    expect(billing.entries.map((e) => e.entryId)).toEqual([good!.entryId]);
    expect(billing.malformed).toEqual([junk]);

    await bufferResults(
      ctx.redis,
      ctx.keys,
      new Map([['billing', batch(leaseValue, billing.entries, billing.malformed)]]),
    );
    expect(await ctx.redis.xlen(ctx.keys.results('billing'))).toBe(0);
    expect(await bufferedSequences('billing')).toEqual([1]);
  });
});

describe('advanceDelivered', () => {
  it('records progress in turn, once, and removes delivered results from the buffer', async () => {
    const leaseValue = await lease('billing');
    await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(leaseValue, await produce('billing', 5))]]));
    const step = (from: number, to: number) => ({ destination: 'billing', leaseValue, from, to });

    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(1, 1)])).toEqual(['recorded']);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBe('1');
    expect(await bufferedSequences('billing')).toEqual([2, 3, 4, 5]);

    // The same step again (a retry after a lost reply) changes nothing.
    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(1, 1)])).toEqual(['already']);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBe('1');

    // Skipping ahead past a gap is refused.
    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(3, 3)])).toEqual(['out-of-turn']);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBe('1');
    expect(await bufferedSequences('billing')).toEqual([2, 3, 4, 5]);

    // A range (a TCP window acknowledged at once).
    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(2, 4)])).toEqual(['recorded']);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBe('4');
    expect(await bufferedSequences('billing')).toEqual([5]);
  });

  it('deletes the results it settles straight from the result stream, keeping their values in the history; fenced or out of turn, deletes nothing', async () => {
    const leaseValue = await lease('billing');
    // Values the sender delivered without moving them into the buffer: still in their stream.
    const results = await produce('billing', 4, [2, 1, 3, 4]);
    const entryOf = (seq: number): [number, string] => [seq, results.find((r) => r.sequence === seq)!.entryId];
    const streamSequences = async () =>
      (await resultEntries(ctx, 'billing')).map((e) => e.sequence).sort((a, b) => a - b);
    const step = (from: number, to: number, lease = leaseValue) => ({
      destination: 'billing',
      leaseValue: lease,
      from,
      to,
      history: 100,
      inStream: Array.from({ length: to - from + 1 }, (_, i) => entryOf(from + i)),
    });

    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(1, 2, 'sender-x|1')])).toEqual(['fenced']);
    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(2, 3)])).toEqual(['out-of-turn']);
    expect(await streamSequences()).toEqual([1, 2, 3, 4]);

    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(1, 2)])).toEqual(['recorded']);
    expect(await streamSequences()).toEqual([3, 4]);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBe('2');
    const history = await ctx.redis.xrange(ctx.keys.history('billing'), '-', '+');
    expect(history.map(([id, fields]) => [id, fieldsOf(fields).p])).toEqual([
      ['1-0', '{"t":1}'],
      ['2-0', '{"t":2}'],
    ]);

    // One moved into the buffer meanwhile (it waited too long): the buffer's copy is the one
    // settled and kept; the entry it names is gone already, which is no error.
    await bufferResults(
      ctx.redis,
      ctx.keys,
      new Map([['billing', batch(leaseValue, [results.find((r) => r.sequence === 3)!])]]),
    );
    expect(await advanceDelivered(ctx.redis, ctx.keys, [step(3, 4)])).toEqual(['recorded']);
    expect(await streamSequences()).toEqual([]);
    expect(await ctx.redis.hlen(ctx.keys.buffer('billing'))).toBe(0);
    expect((await ctx.redis.xrange(ctx.keys.history('billing'), '-', '+')).map(([id]) => id)).toEqual([
      '1-0',
      '2-0',
      '3-0',
      '4-0',
    ]);
  });

  it('refuses progress from a sender whose lease value is stale (fenced), even the same sender’s old token', async () => {
    const old = await lease('billing', 'sender-a');
    await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(old, await produce('billing', 2))]]));
    // sender-a's lease runs out while it is paused; it takes the destination again (token 2).
    await ctx.redis.del(ctx.keys.lease('billing'));
    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue: old, from: 1, to: 1 }]),
    ).toEqual(['fenced']);
    const fresh = await lease('billing', 'sender-a');
    expect(fresh).toBe('sender-a|2');

    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue: old, from: 1, to: 1 }]),
    ).toEqual(['fenced']);
    expect(await ctx.redis.hget(ctx.keys.delivered, 'billing')).toBeNull();
    expect(await bufferedSequences('billing')).toEqual([1, 2]);

    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue: fresh, from: 1, to: 1 }]),
    ).toEqual(['recorded']);
  });

  it('answers each destination of one call on its own, in order', async () => {
    const billing = await lease('billing');
    const ledger = await lease('ledger');
    await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'audit', leaseValue: 'nobody|1', from: 1, to: 1 }]);

    const outcomes = await advanceDelivered(ctx.redis, ctx.keys, [
      { destination: 'billing', leaseValue: billing, from: 1, to: 1 },
      { destination: 'ledger', leaseValue: ledger, from: 2, to: 2 },
      { destination: 'audit', leaseValue: 'nobody|1', from: 1, to: 1 },
    ]);

    expect(outcomes).toEqual(['recorded', 'out-of-turn', 'fenced']);
    expect(await ctx.redis.hgetall(ctx.keys.delivered)).toEqual({ billing: '1' });
  });

  it('clears the blocked marker once the dead letter that set it is settled, not before', async () => {
    const leaseValue = await lease('billing');
    await markBlocked(ctx.redis, ctx.keys, 'billing', 3);
    expect(await readBlocked(ctx.redis, ctx.keys, 'billing')).toBe(3);
    expect(await ctx.redis.hget(ctx.keys.blocked, 'billing')).toBe('3');

    await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue, from: 1, to: 2 }]);
    expect(await readBlocked(ctx.redis, ctx.keys, 'billing')).toBe(3);

    // The operator skipped it: the sender records 3 as settled.
    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue, from: 3, to: 3 }]),
    ).toEqual(['recorded']);
    expect(await readBlocked(ctx.redis, ctx.keys, 'billing')).toBeUndefined();
    expect(await ctx.redis.hexists(ctx.keys.blocked, 'billing')).toBe(0);
  });
});

describe('loadLaneState', () => {
  it('starts a destination never seen at 0, not blocked, with an empty buffer', async () => {
    expect(await loadLaneState(ctx.redis, ctx.keys, 'new')).toEqual({
      delivered: 0,
      blockedAt: undefined,
      buffered: [],
    });
  });

  it('returns what the previous lease holder stored: delivered, block marker and buffered results', async () => {
    const leaseValue = await lease('billing');
    const bodies: Result[] = [
      {
        kind: 'value',
        id: 'm-3',
        sequence: 3,
        acceptedAt: 1_700_000_000_003,
        attempts: 2,
        body: '{"a":"x\u001fy\nz ü"}',
      },
      { kind: 'none', id: 'm-4', sequence: 4, acceptedAt: 1_700_000_000_004, attempts: 1, body: '' },
      { kind: 'dead', id: 'm-5', sequence: 5, acceptedAt: 1_700_000_000_005, attempts: 5, body: 'Error: boom' },
    ];
    const entries: ResultEntry[] = [];
    for (const r of bodies) {
      const id = await ctx.redis.xadd(
        ctx.keys.results('billing'),
        '*',
        'k',
        { value: 'v', none: 'n', dead: 'x' }[r.kind],
        's',
        r.sequence,
        'm',
        r.id,
        't',
        r.acceptedAt,
        'a',
        r.attempts,
        'p',
        r.body,
      );
      entries.push({ ...r, entryId: id! });
    }
    await ctx.redis.hset(ctx.keys.delivered, 'billing', 2);
    await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(leaseValue, entries)]]));
    await markBlocked(ctx.redis, ctx.keys, 'billing', 5);

    // A new sender takes over and loads exactly that.
    const state = await loadLaneState(await ctx.connect('sender-b'), ctx.keys, 'billing');
    expect(state.delivered).toBe(2);
    expect(state.blockedAt).toBe(5);
    expect(state.buffered.sort((a, b) => a.sequence - b.sequence)).toEqual(bodies);
  });
  it('also returns the values and drops still in the result stream, but not a dead result before it is buffered', async () => {
    const results = await produce('billing', 3, [3, 1, 2]);
    await bufferResults(
      ctx.redis,
      ctx.keys,
      new Map([
        [
          'billing',
          batch(
            await lease('billing'),
            results.filter((r) => r.sequence === 3),
          ),
        ],
      ]),
    );
    const dead = await ctx.redis.xadd(
      ctx.keys.results('billing'),
      '*',
      'k',
      'x',
      's',
      4,
      'm',
      'm-4',
      't',
      1,
      'a',
      3,
      'p',
      'Error',
    );

    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.buffered.map((r) => r.sequence).sort()).toEqual([1, 2, 3]);
    // Those from the stream name their entry, so delivering them deletes it (advance).
    const fromStream = state.buffered.filter((r) => 'entryId' in r) as ResultEntry[];
    expect(fromStream.map((r) => r.sequence).sort()).toEqual([1, 2]);
    expect(fromStream.map((r) => r.entryId)).not.toContain(dead);
  });
});

describe('deadLetterDelivery', () => {
  it('appends a refused delivery to the dead-letter stream with the fields of a transform’s dead letter', async () => {
    const result: Result = {
      kind: 'value',
      id: 'm-9',
      sequence: 9,
      acceptedAt: 1_700_000_000_009,
      attempts: 1,
      body: '{"x":1}',
    };
    const before = Date.now();
    await deadLetterDelivery(ctx.redis, ctx.keys, 'billing', result, 'DELIVERY_REJECTED: 400 Bad Request');

    const deadLetters = await ctx.redis.xrange(ctx.keys.deadLetters, '-', '+');
    expect(deadLetters).toHaveLength(1);
    const dl = fieldsOf(deadLetters[0]![1]);
    expect(dl).toMatchObject({
      d: 'billing',
      s: '9',
      m: 'm-9',
      a: '1',
      e: 'DELIVERY_REJECTED: 400 Bad Request',
      t: '1700000000009',
      p: '{"x":1}',
      stage: 'delivery',
    });
    expect(Number(dl.at)).toBeGreaterThanOrEqual(before);
  });
});

describe('a lease taken over by another sender', () => {
  it('lets the new holder buffer and deliver what the old one left in the stream', async () => {
    const a = await lease('billing', 'sender-a');
    const results = await produce('billing', 3);
    await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(a, results.slice(0, 1))]]));
    await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue: a, from: 1, to: 1 }]);

    // sender-a's lease expires mid-way; sender-b takes over.
    await ctx.redis.pexpire(ctx.keys.lease('billing'), 1);
    await sleep(20);
    const bRedis = await ctx.connect('sender-b');
    const b = await lease('billing', 'sender-b', bRedis);
    expect(await bufferResults(ctx.redis, ctx.keys, new Map([['billing', batch(a, results.slice(1))]]))).toEqual(
      new Map([['billing', -1]]),
    );

    const state = await loadLaneState(bRedis, ctx.keys, 'billing');
    expect(state.delivered).toBe(1);
    const read = await readResults(bRedis, new ResultStreams(ctx.keys, ['billing']), ['0-0'], 100, 100);
    const left = read.get('billing')!.entries;
    expect(left.map((e) => e.sequence)).toEqual([2, 3]);
    expect(await bufferResults(bRedis, ctx.keys, new Map([['billing', batch(b, left)]]))).toEqual(
      new Map([['billing', 0]]),
    );
    expect(
      await advanceDelivered(bRedis, ctx.keys, [{ destination: 'billing', leaseValue: b, from: 2, to: 3 }]),
    ).toEqual(['recorded']);
    expect(await loadLaneState(bRedis, ctx.keys, 'billing')).toEqual({
      delivered: 3,
      blockedAt: undefined,
      buffered: [],
    });
  });
});

describe('writesLeftProcess', () => {
  it('is true on a ready single-server connection once its writes are in the socket, false where they cannot be trusted to have left', async () => {
    expect(writesLeftProcess(ctx.redis)).toBe(true);
    // A command just sent on a quiet loopback connection is handed to the kernel at once.
    const sent = ctx.redis.set(ctx.keys.waitMark, '1');
    expect(writesLeftProcess(ctx.redis)).toBe(true);
    await sent;

    // Writes that count only once replicas confirm them (RESEQ_WAIT_REPLICAS) never do here.
    const url = inject('redisUrl');
    const confirmed = createRedis({
      target: { url, wait: { replicas: 1, timeoutMs: 10 } },
      name: 'test-confirmed',
      logger: createLogger({ app: 'test', level: 'silent' }),
      mode: 'wait',
    });
    await connectRedis(confirmed);
    try {
      expect(writesLeftProcess(confirmed)).toBe(false);
    } finally {
      confirmed.disconnect();
    }

    // Not connected (yet, or any more): a command would wait in ioredis's offline queue.
    const closed = await ctx.connect('closing');
    closed.disconnect();
    expect(writesLeftProcess(closed)).toBe(false);
  });
});
