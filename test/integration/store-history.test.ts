/**
 * A destination's retained history and its replays, and the status figures that need a script
 * (in flight, lag in seconds), against a real Redis with the real scripts: `advance` keeping
 * the delivered values (and only those), trimming to about the configured length, the
 * `replay-request` refusals, the sender's fenced `replay-step`, and where `status-age` finds
 * the oldest unsettled message.
 */
import {
  acquireLeases,
  advanceDelivered,
  bufferResults,
  completeBatch,
  ensureWorkerGroup,
  pauseDestination,
  readHistory,
  readInput,
  readStatus,
  ReplayNotDeliveredError,
  ReplayNotRetainedError,
  ReplayPausedError,
  ReplayPendingError,
  replayStep,
  requestReplay,
  type Outcome,
  type ReseqRedis,
  type ResultKind,
} from '@reseq/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fieldsOf, ingest, inputEntries, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
let blocking: ReseqRedis;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  blocking = await ctx.connect('blocking');
});
afterEach(async () => {
  await ctx.close();
});

async function lease(destination: string, sender = 'sender-a'): Promise<string> {
  const held = await acquireLeases(ctx.redis, ctx.keys, sender, [destination], 30_000, 1);
  const value = held.get(destination);
  if (!value) throw new Error(`${sender} could not take the lease of ${destination}`);
  return value;
}

/** Accepts `count` messages for `destination`; returns their sequences. */
async function accept(destination: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const outcome = await ingest(ctx, [destination], { i }, `${destination}-${i}-${Math.random()}`);
    out.push(outcome.sequences[destination]!);
  }
  return out;
}

/** Transforms every unread input entry with the kind `kindOf(sequence)` (payload `{ t: seq }`). */
async function transform(kindOf: (sequence: number) => ResultKind = () => 'value'): Promise<void> {
  await ensureWorkerGroup(ctx.redis, ctx.keys);
  const { entries } = await readInput(blocking, ctx.keys, 'w', '>', 10_000, 100);
  const outcomes: Outcome[] = entries.map((entry) => {
    const kind = kindOf(entry.sequence);
    return { entry, kind, attempts: 1, body: kind === 'value' ? JSON.stringify({ t: entry.sequence }) : '' };
  });
  await completeBatch(ctx.redis, ctx.keys, outcomes);
}

/** Moves the destination's results into its reorder buffer under `leaseValue`. */
async function buffer(destination: string, leaseValue: string): Promise<void> {
  const entries = await resultEntries(ctx, destination);
  await bufferResults(ctx.redis, ctx.keys, new Map([[destination, { leaseValue, entries, malformed: [] }]]));
}

/** Settles `from`..`to`, one step per sequence, keeping up to `history` values. */
async function settle(destination: string, leaseValue: string, from: number, to: number, history: number) {
  for (let seq = from; seq <= to; seq++) {
    const [outcome] = await advanceDelivered(ctx.redis, ctx.keys, [
      { destination, leaseValue, from: seq, to: seq, history },
    ]);
    expect(outcome).toBe('recorded');
  }
}

async function historySequences(destination: string): Promise<number[]> {
  const entries = await ctx.redis.xrange(ctx.keys.history(destination), '-', '+');
  return entries.map(([id]) => Number(id.split('-')[0]));
}

describe('history', () => {
  it('keeps each delivered value (not drops or dead letters) with its id, accept time and payload', async () => {
    const leaseValue = await lease('billing');
    await accept('billing', 4);
    const accepted = await inputEntries(ctx);
    await transform((seq) => (seq === 2 ? 'none' : 'value'));
    await buffer('billing', leaseValue);
    await settle('billing', leaseValue, 1, 4, 100);

    expect(await historySequences('billing')).toEqual([1, 3, 4]);
    const [first] = await ctx.redis.xrange(ctx.keys.history('billing'), '-', '+', 'COUNT', 1);
    expect(first![0]).toBe('1-0');
    expect(fieldsOf(first![1])).toEqual({
      m: accepted[0]!.id,
      t: String(accepted[0]!.acceptedAt),
      a: '1',
      p: '{"t":1}',
    });
    expect(await readHistory(ctx.redis, ctx.keys, 'billing', 2, 4, 10)).toEqual([
      {
        kind: 'value',
        id: accepted[2]!.id,
        sequence: 3,
        acceptedAt: accepted[2]!.acceptedAt,
        attempts: 1,
        body: '{"t":3}',
      },
      {
        kind: 'value',
        id: accepted[3]!.id,
        sequence: 4,
        acceptedAt: accepted[3]!.acceptedAt,
        attempts: 1,
        body: '{"t":4}',
      },
    ]);
    // The reorder buffer is emptied as before: history is a copy, not a leftover.
    expect(await ctx.redis.hlen(ctx.keys.buffer('billing'))).toBe(0);
  });

  it('keeps nothing with history 0, and about the configured length, the newest, once trimmed', async () => {
    const leaseValue = await lease('billing');
    await accept('billing', 3);
    await transform();
    await buffer('billing', leaseValue);
    await settle('billing', leaseValue, 1, 3, 0);
    expect(await ctx.redis.exists(ctx.keys.history('billing'))).toBe(0);

    const many = await accept('audit', 400);
    const auditLease = await lease('audit');
    await transform();
    await buffer('audit', auditLease);
    await settle('audit', auditLease, 1, many.length, 20);
    const kept = await historySequences('audit');
    // MAXLEN ~ trims whole stream nodes: at least 20 stay, never more than a node's worth over.
    expect(kept.length).toBeGreaterThanOrEqual(20);
    expect(kept.length).toBeLessThan(400);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 400 - kept.length + 1 + i));
  });
});

describe('replay requests', () => {
  it('refuses what cannot be met, records one that can, and lets only the lease holder run it', async () => {
    const leaseValue = await lease('billing');
    expect(await requestReplay(ctx.redis, ctx.keys, 'billing', 1).catch((e: unknown) => e)).toBeInstanceOf(
      ReplayNotDeliveredError,
    );
    await accept('billing', 5);
    await transform();
    await buffer('billing', leaseValue);
    await settle('billing', leaseValue, 1, 2, 0);
    await settle('billing', leaseValue, 3, 5, 100);

    const notRetained = await requestReplay(ctx.redis, ctx.keys, 'billing', 2).catch((e: unknown) => e);
    expect(notRetained).toBeInstanceOf(ReplayNotRetainedError);
    expect((notRetained as ReplayNotRetainedError).context).toMatchObject({ oldest: 3, newest: 5 });
    expect(await requestReplay(ctx.redis, ctx.keys, 'billing', 6).catch((e: unknown) => e)).toBeInstanceOf(
      ReplayNotDeliveredError,
    );

    const scheduled = await requestReplay(ctx.redis, ctx.keys, 'billing', 4, 1_700_000_000_000);
    expect(scheduled).toMatchObject({ destination: 'billing', from: 4, to: 5, retained: { oldest: 3, newest: 5 } });
    const pending = await requestReplay(ctx.redis, ctx.keys, 'billing', 3).catch((e: unknown) => e);
    expect(pending).toBeInstanceOf(ReplayPendingError);
    const status = (await readStatus(ctx.redis, ctx.keys, ['billing'])).get('billing')!;
    expect(status.replay).toEqual({
      id: scheduled.id,
      from: 4,
      requested: 5,
      requestedAt: 1_700_000_000_000,
      to: null,
      next: null,
    });

    // Another sender's (stale) lease value moves nothing; the holder starts, steps and ends it.
    expect(await replayStep(ctx.redis, ctx.keys, 'billing', 'other|9', scheduled.id, 'start', 5)).toEqual({
      outcome: 'fenced',
    });
    expect(await replayStep(ctx.redis, ctx.keys, 'billing', leaseValue, 'not-it', 'start', 5)).toEqual({
      outcome: 'gone',
    });
    expect(await replayStep(ctx.redis, ctx.keys, 'billing', leaseValue, scheduled.id, 'start', 5)).toEqual({
      outcome: 'ok',
      from: 4,
      to: 5,
      next: 4,
    });
    await replayStep(ctx.redis, ctx.keys, 'billing', leaseValue, scheduled.id, 'next', 5);
    // A later holder (after a crash) keeps the end and goes on from the recorded next.
    expect(await replayStep(ctx.redis, ctx.keys, 'billing', leaseValue, scheduled.id, 'start', 9)).toEqual({
      outcome: 'ok',
      from: 4,
      to: 5,
      next: 5,
    });
    await replayStep(ctx.redis, ctx.keys, 'billing', leaseValue, scheduled.id, 'done');
    expect(await ctx.redis.exists(ctx.keys.replay('billing'))).toBe(0);

    await pauseDestination(ctx.redis, ctx.keys, 'billing', 1_700_000_000_000);
    expect(await requestReplay(ctx.redis, ctx.keys, 'billing', 4).catch((e: unknown) => e)).toBeInstanceOf(
      ReplayPausedError,
    );
  });
});

describe('status: in flight and lag in seconds', () => {
  it('counts messages not transformed yet as in flight, and ages the oldest unsettled one wherever it is', async () => {
    const leaseValue = await lease('billing');
    await accept('billing', 3);
    await accept('audit', 1);
    const accepted = (await inputEntries(ctx)).filter((e) => e.destination === 'billing');
    const first = accepted[0];
    const now = first!.acceptedAt + 4_500;

    // In the input stream, not transformed yet.
    let billing = (await readStatus(ctx.redis, ctx.keys, ['billing', 'audit', 'idle'], now)).get('billing')!;
    expect(billing).toMatchObject({ lag: 3, inFlight: 3, buffered: 0, pendingResults: 0 });
    expect(billing.oldestUnsettledAt).toBe(first!.acceptedAt);
    expect(billing.lagSeconds).toBe(4.5);

    // Transformed: in the result stream, then in the reorder buffer; no longer in flight.
    await transform();
    billing = (await readStatus(ctx.redis, ctx.keys, ['billing'], now)).get('billing')!;
    expect(billing).toMatchObject({ lag: 3, inFlight: 0, pendingResults: 3, oldestUnsettledAt: first!.acceptedAt });
    await buffer('billing', leaseValue);
    billing = (await readStatus(ctx.redis, ctx.keys, ['billing'], now)).get('billing')!;
    expect(billing).toMatchObject({ lag: 3, inFlight: 0, buffered: 3, oldestUnsettledAt: first!.acceptedAt });

    // Settled up to 1: the age is that of sequence 2 now; settled entirely: 0.
    await settle('billing', leaseValue, 1, 1, 0);
    billing = (await readStatus(ctx.redis, ctx.keys, ['billing'], now)).get('billing')!;
    expect(billing).toMatchObject({ lag: 2, oldestUnsettledAt: accepted[1]!.acceptedAt });
    expect(billing.lagSeconds).toBe((now - accepted[1]!.acceptedAt) / 1000);
    await settle('billing', leaseValue, 2, 3, 0);
    const states = await readStatus(ctx.redis, ctx.keys, ['billing', 'idle'], now);
    expect(states.get('billing')).toMatchObject({ lag: 0, inFlight: 0, lagSeconds: 0, oldestUnsettledAt: null });
    expect(states.get('idle')).toMatchObject({ lag: 0, inFlight: 0, lagSeconds: 0, oldestUnsettledAt: null });
  });

  it('reports an unknown age (null) for a sequence found nowhere', async () => {
    await accept('billing', 1);
    await ctx.redis.del(ctx.keys.input);
    const billing = (await readStatus(ctx.redis, ctx.keys, ['billing'])).get('billing')!;
    expect(billing).toMatchObject({ lag: 1, inFlight: 1, lagSeconds: null, oldestUnsettledAt: null });
  });
});
