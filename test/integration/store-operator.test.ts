/**
 * Dead letters in the store against a real Redis: the dead-letter index kept with every
 * dead-letter write, the operator's `dlq retry` and `dlq skip` scripts, the block marker that
 * is set only while the dead letter is still there, skipped sequences, and a result that turns
 * up for a skipped sequence (dead-lettered as late, never buffered).
 */
import {
  acquireLeases,
  advanceDelivered,
  blockOnDeadLetter,
  bufferResults,
  completeBatch,
  deadLetterDelivery,
  DeadLetterNotFoundError,
  DeadLetterPassedError,
  decodeInputEntry,
  ensureWorkerGroup,
  getDeadLetter,
  listDeadLetters,
  loadLaneState,
  readInput,
  readStatus,
  retryDeadLetter,
  skipDeadLetter,
  type InputEntry,
  type Outcome,
  type ReseqRedis,
  type ResultEntry,
} from '@reseq/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fieldsOf, ingest, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
let blocking: ReseqRedis;
let leaseValue: string;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  blocking = await ctx.connect('blocking');
  await ensureWorkerGroup(ctx.redis, ctx.keys);
  leaseValue = (await acquireLeases(ctx.redis, ctx.keys, 'sender-a', ['billing'], 30_000, 1)).get('billing')!;
});
afterEach(async () => {
  await ctx.close();
});

/** Ingests `count` messages to billing (payload `{ n: <i> }`) and reads them as a worker. */
async function accept(count: number): Promise<InputEntry[]> {
  for (let n = 1; n <= count; n++) await ingest(ctx, ['billing'], { n }, `msg-${n}-${Math.random()}`);
  const { entries } = await readInput(blocking, ctx.keys, 'w', '>', 1000, 100);
  return entries;
}

/** Completes entries: a dead letter where `dead` says so, else a value `{ t: <sequence> }`. */
async function complete(entries: readonly InputEntry[], dead: readonly number[] = []): Promise<void> {
  const outcomes: Outcome[] = entries.map((entry) =>
    dead.includes(entry.sequence)
      ? { entry, kind: 'dead', attempts: 1, body: 'TRANSFORM_PERMANENT: Error: poison' }
      : { entry, kind: 'value', attempts: 1, body: JSON.stringify({ t: entry.sequence }) },
  );
  await completeBatch(ctx.redis, ctx.keys, outcomes);
}

/** Moves every result of billing into its reorder buffer, as the sender's reader does. */
async function bufferAll(entries?: readonly ResultEntry[]): Promise<number> {
  const results = entries ?? (await resultEntries(ctx, 'billing'));
  const outcome = await bufferResults(
    ctx.redis,
    ctx.keys,
    new Map([['billing', { leaseValue, entries: results, malformed: [] }]]),
  );
  return outcome.get('billing')!;
}

async function advance(from: number, to: number, skipped = false): Promise<void> {
  await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue, from, to, skipped }]);
}

async function dlqFields(): Promise<Record<string, string>[]> {
  return (await ctx.redis.xrange(ctx.keys.deadLetters, '-', '+')).map(([, fields]) => fieldsOf(fields));
}

describe('the dead-letter index', () => {
  it('indexes every transform dead letter by sequence, written with its dead-letter entry', async () => {
    await complete(await accept(3), [2, 3]);
    const index = await ctx.redis.hgetall(ctx.keys.deadLetterIndex('billing'));
    const entries = await ctx.redis.xrange(ctx.keys.deadLetters, '-', '+');
    expect(index).toEqual({ '2': entries[0]![0], '3': entries[1]![0] });
    expect((await readStatus(ctx.redis, ctx.keys, ['billing'])).get('billing')).toMatchObject({
      assigned: 3,
      delivered: 0,
      deadLettered: 2,
      blocked: false,
      pendingResults: 3,
    });
  });

  it('keeps one delivery-stage dead letter per sequence: a second refusal replaces the first', async () => {
    const result = { kind: 'value' as const, id: 'm-4', sequence: 4, acceptedAt: 1, attempts: 1, body: '{"x":1}' };
    await deadLetterDelivery(ctx.redis, ctx.keys, 'billing', result, 'DELIVERY_REJECTED: HTTP 400');
    const second = await deadLetterDelivery(ctx.redis, ctx.keys, 'billing', result, 'DELIVERY_REJECTED: HTTP 422');
    expect(await ctx.redis.hgetall(ctx.keys.deadLetterIndex('billing'))).toEqual({ '4': second });
    expect(await dlqFields()).toEqual([
      expect.objectContaining({ e: 'DELIVERY_REJECTED: HTTP 422', stage: 'delivery' }),
    ]);
  });
});

describe('blockOnDeadLetter', () => {
  it('marks the destination only while the dead letter is still there', async () => {
    await complete(await accept(1), [1]);
    await bufferAll();
    expect(await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'transform')).toBe(true);
    expect(await ctx.redis.hget(ctx.keys.blocked, 'billing')).toBe('1');

    await skipDeadLetter(ctx.redis, ctx.keys, 'billing', 1);
    expect(await ctx.redis.hget(ctx.keys.blocked, 'billing')).toBeNull();
    // A sender that still held the dead result in memory does not block again.
    expect(await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'transform')).toBe(false);
    expect(await ctx.redis.hget(ctx.keys.blocked, 'billing')).toBeNull();
    // Delivery stage: the dead-letter index decides.
    expect(await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'delivery')).toBe(false);
  });
});

describe('retryDeadLetter', () => {
  it('puts a transform dead letter back on the input stream as it was accepted, and releases the block', async () => {
    const [first, second] = await accept(2);
    await complete([first!, second!], [1]);
    await bufferAll();
    await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'transform');

    const outcome = await retryDeadLetter(ctx.redis, ctx.keys, 'billing', 1);

    expect(outcome.stage).toBe('transform');
    const input = await ctx.redis.xrange(ctx.keys.input, '-', '+');
    expect(input).toHaveLength(1);
    expect(input[0]![0]).toBe(outcome.inputEntryId);
    expect(decodeInputEntry(input[0]![0], input[0]![1])).toMatchObject({
      id: first!.id,
      destination: 'billing',
      sequence: 1,
      acceptedAt: first!.acceptedAt,
      payload: first!.payload,
    });
    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.blockedAt).toBeUndefined();
    expect(state.buffered.map((r) => r.sequence)).toEqual([2]);
    expect(await dlqFields()).toEqual([]);
    expect(await ctx.redis.hlen(ctx.keys.deadLetterIndex('billing'))).toBe(0);

    // A worker reads it like any new entry, and its new result takes the old one's place.
    const { entries } = await readInput(blocking, ctx.keys, 'w', '>', 10, 100);
    expect(entries.map((e) => e.sequence)).toEqual([1]);
    await complete(entries);
    expect(await bufferAll()).toBe(0);
    expect((await loadLaneState(ctx.redis, ctx.keys, 'billing')).buffered.map((r) => [r.sequence, r.kind])).toEqual(
      expect.arrayContaining([
        [1, 'value'],
        [2, 'value'],
      ]),
    );
  });

  it('withdraws a dead result the sender has not buffered yet, even one it has read already', async () => {
    await complete(await accept(1), [1]);
    const read = await resultEntries(ctx, 'billing');

    await retryDeadLetter(ctx.redis, ctx.keys, 'billing', 1);

    expect(await ctx.redis.xlen(ctx.keys.results('billing'))).toBe(0);
    // The reader's batch still carries it: the buffer script drops it as withdrawn.
    expect(await bufferAll(read)).toBe(1);
    expect(await ctx.redis.hlen(ctx.keys.buffer('billing'))).toBe(0);
  });

  it('redelivers a delivery-stage dead letter: its transformed payload goes back into the buffer', async () => {
    await complete(await accept(1));
    await bufferAll();
    const [result] = (await loadLaneState(ctx.redis, ctx.keys, 'billing')).buffered;
    await deadLetterDelivery(ctx.redis, ctx.keys, 'billing', result!, 'DELIVERY_REJECTED: HTTP 400');
    await ctx.redis.hdel(ctx.keys.buffer('billing'), '1');
    await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'delivery');

    expect(await retryDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).toEqual({
      stage: 'delivery',
      inputEntryId: undefined,
    });
    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.buffered).toEqual([result]);
    expect(state.blockedAt).toBeUndefined();
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(0);
  });

  it('refuses a sequence that is not a dead letter of that destination, and one already passed', async () => {
    await complete(await accept(2), [1]);
    await bufferAll();
    await expect(retryDeadLetter(ctx.redis, ctx.keys, 'billing', 2)).rejects.toBeInstanceOf(DeadLetterNotFoundError);
    await expect(retryDeadLetter(ctx.redis, ctx.keys, 'ledger', 1)).rejects.toMatchObject({ code: 'DLQ_NOT_FOUND' });

    await advance(1, 1, true);
    await expect(retryDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).rejects.toBeInstanceOf(DeadLetterPassedError);
    // Refused means untouched.
    expect(await ctx.redis.hlen(ctx.keys.deadLetterIndex('billing'))).toBe(1);
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(0);
  });
});

describe('skipDeadLetter', () => {
  it('puts "deliver nothing" in its place, records it as skipped and releases the block', async () => {
    await complete(await accept(2), [1]);
    await bufferAll();
    await blockOnDeadLetter(ctx.redis, ctx.keys, 'billing', 1, 'transform');

    expect(await skipDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).toBe('skipped');

    const state = await loadLaneState(ctx.redis, ctx.keys, 'billing');
    expect(state.blockedAt).toBeUndefined();
    expect(state.buffered.find((r) => r.sequence === 1)).toMatchObject({ kind: 'none', body: '' });
    expect(await ctx.redis.smembers(ctx.keys.skipped('billing'))).toEqual(['1']);
    expect(await dlqFields()).toEqual([]);
    await expect(skipDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).rejects.toBeInstanceOf(DeadLetterNotFoundError);
  });

  it('only removes a dead letter whose sequence was passed already (onDeadLetter: skip)', async () => {
    await complete(await accept(1), [1]);
    await bufferAll();
    await advance(1, 1, true);

    expect(await skipDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).toBe('removed');
    expect(await ctx.redis.hlen(ctx.keys.buffer('billing'))).toBe(0);
    expect(await ctx.redis.hlen(ctx.keys.deadLetterIndex('billing'))).toBe(0);
  });
});

describe('a result for a skipped sequence', () => {
  it('goes to the dead-letter list as late and is never buffered; other late duplicates are dropped', async () => {
    const [first, second] = await accept(2);
    await complete([second!]);
    await bufferAll();
    // Sequence 1 is given up (as the lane does under onDeadLetter: skip), 2 is delivered.
    await advance(1, 1, true);
    await advance(2, 2);
    expect(await ctx.redis.smembers(ctx.keys.skipped('billing'))).toEqual(['1']);

    // Now its value turns up after all, and a duplicate of the delivered 2 as well.
    await complete([first!]);
    const late = await resultEntries(ctx, 'billing');
    const duplicate: ResultEntry = {
      ...late[0]!,
      entryId: (await ctx.redis.xadd(
        ctx.keys.results('billing'),
        '*',
        'k',
        'v',
        's',
        2,
        'm',
        second!.id,
        't',
        1,
        'a',
        1,
        'p',
        '{}',
      )) as string,
      sequence: 2,
    };
    expect(await bufferAll([late[0]!, duplicate])).toBe(2);

    expect(await ctx.redis.hlen(ctx.keys.buffer('billing'))).toBe(0);
    expect(await ctx.redis.xlen(ctx.keys.results('billing'))).toBe(0);
    const letters = await listDeadLetters(ctx.redis, ctx.keys, 'billing');
    expect(letters).toEqual([
      expect.objectContaining({
        destination: 'billing',
        sequence: 1,
        id: first!.id,
        stage: 'late',
        state: 'passed',
        payload: JSON.stringify({ t: 1 }),
      }),
    ]);
    expect(letters[0]!.lastError).toMatch(/^LATE: /);
    expect(await getDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).toEqual(letters[0]);
    await expect(retryDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).rejects.toBeInstanceOf(DeadLetterPassedError);
    expect(await skipDeadLetter(ctx.redis, ctx.keys, 'billing', 1)).toBe('removed');
  });
});
