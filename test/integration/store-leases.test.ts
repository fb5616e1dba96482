/**
 * Destination leases and sender heartbeats against a real Redis: who may deliver for a
 * destination, with which fencing token, and how leases move between senders.
 */
import { acquireLeases, releaseLeases, renewLeases, senderHeartbeat, type ReseqRedis } from '@reseq/store';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type StoreContext } from './store-context.js';

let ctx: StoreContext;
/** A second sender process, on a connection of its own. */
let other: ReseqRedis;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  other = await ctx.connect('sender-b');
});
afterEach(async () => {
  await ctx.close();
});

const LONG_TTL = 30_000;
const SHORT_TTL = 150;

function token(leaseValue: string | undefined): number {
  return Number(leaseValue?.split('|')[1]);
}

describe('acquireLeases', () => {
  it('takes free leases as "<sender>|<token>", visible with a time to live', async () => {
    const held = await acquireLeases(ctx.redis, ctx.keys, 'sender-a', ['billing', 'ledger'], LONG_TTL, 10);
    expect(held).toEqual(
      new Map([
        ['billing', 'sender-a|1'],
        ['ledger', 'sender-a|1'],
      ]),
    );
    expect(await ctx.redis.get(ctx.keys.lease('billing'))).toBe('sender-a|1');
    const pttl = await ctx.redis.pttl(ctx.keys.lease('billing'));
    expect(pttl).toBeGreaterThan(LONG_TTL - 5_000);
    expect(pttl).toBeLessThanOrEqual(LONG_TTL);
    expect(await ctx.redis.hgetall(ctx.keys.fences)).toEqual({ billing: '1', ledger: '1' });
  });

  it('hands out fencing tokens that only ever increase per destination', async () => {
    const tokens: number[] = [];
    const a1 = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], LONG_TTL, 1);
    tokens.push(token(a1.get('billing')));
    await releaseLeases(ctx.redis, ctx.keys, a1);

    const b = await acquireLeases(other, ctx.keys, 'b', ['billing'], SHORT_TTL, 1);
    tokens.push(token(b.get('billing')));
    await sleep(SHORT_TTL + 100); // b stalls and its lease runs out

    // The same sender taking the destination again gets a new token, not its old one back.
    const a2 = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], SHORT_TTL, 1);
    tokens.push(token(a2.get('billing')));
    await sleep(SHORT_TTL + 100);
    const a3 = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], LONG_TTL, 1);
    tokens.push(token(a3.get('billing')));

    expect(tokens).toEqual([1, 2, 3, 4]);
    // Another destination has its own sequence of tokens.
    expect(await acquireLeases(ctx.redis, ctx.keys, 'a', ['ledger'], LONG_TTL, 1)).toEqual(
      new Map([['ledger', 'a|1']]),
    );
  });

  it('extends the caller’s own lease with the same token instead of taking a new one', async () => {
    await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], 1_000, 1);
    const again = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], LONG_TTL, 0);
    expect(again).toEqual(new Map([['billing', 'a|1']]));
    expect(await ctx.redis.pttl(ctx.keys.lease('billing'))).toBeGreaterThan(1_000);
    expect(await ctx.redis.hget(ctx.keys.fences, 'billing')).toBe('1');
  });

  it('takes at most maxNew new leases, in the order asked, while keeping the ones it holds', async () => {
    const all = ['d1', 'd2', 'd3', 'd4', 'd5'];
    const first = await acquireLeases(ctx.redis, ctx.keys, 'a', all, LONG_TTL, 2);
    expect([...first.keys()]).toEqual(['d1', 'd2']);
    expect(await ctx.redis.exists(...all.slice(2).map((d) => ctx.keys.lease(d)))).toBe(0);

    // Held leases do not count against the budget.
    const second = await acquireLeases(ctx.redis, ctx.keys, 'a', all, LONG_TTL, 2);
    expect([...second.keys()]).toEqual(['d1', 'd2', 'd3', 'd4']);

    // A budget of 0 only extends what it holds; no token is spent on d5.
    const third = await acquireLeases(ctx.redis, ctx.keys, 'a', all, LONG_TTL, 0);
    expect([...third.keys()]).toEqual(['d1', 'd2', 'd3', 'd4']);
    expect(await ctx.redis.hget(ctx.keys.fences, 'd5')).toBeNull();
  });

  it('does not let a second sender take a held lease, until it expires', async () => {
    // Long enough that b's first attempt surely comes while a holds the lease, even on a slow machine.
    const ttl = 500;
    const a = await acquireLeases(ctx.redis, ctx.keys, 'sender-a', ['billing'], ttl, 1);
    expect(a.get('billing')).toBe('sender-a|1');

    expect(await acquireLeases(other, ctx.keys, 'sender-b', ['billing'], LONG_TTL, 1)).toEqual(new Map());
    expect(await ctx.redis.get(ctx.keys.lease('billing'))).toBe('sender-a|1');

    await sleep(ttl + 100);
    const b = await acquireLeases(other, ctx.keys, 'sender-b', ['billing'], LONG_TTL, 1);
    expect(b).toEqual(new Map([['billing', 'sender-b|2']]));
    // Now a cannot take it back.
    expect(await acquireLeases(ctx.redis, ctx.keys, 'sender-a', ['billing'], LONG_TTL, 1)).toEqual(new Map());
  });

  it('does not mistake a sender whose id starts like the holder’s for the holder', async () => {
    await acquireLeases(ctx.redis, ctx.keys, 'sender-1', ['billing'], LONG_TTL, 1);
    expect(await acquireLeases(other, ctx.keys, 'sender', ['billing'], LONG_TTL, 1)).toEqual(new Map());
    expect(await acquireLeases(other, ctx.keys, 'sender-10', ['billing'], LONG_TTL, 1)).toEqual(new Map());
    expect(await ctx.redis.get(ctx.keys.lease('billing'))).toBe('sender-1|1');
  });
});

describe('renewLeases', () => {
  it('extends held leases and reports the ones that expired or were taken over', async () => {
    const held = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing', 'ledger', 'audit'], 2_000, 3);

    expect(await renewLeases(ctx.redis, ctx.keys, held, LONG_TTL)).toEqual([]);
    for (const d of ['billing', 'ledger', 'audit'])
      expect(await ctx.redis.pttl(ctx.keys.lease(d))).toBeGreaterThan(LONG_TTL - 5_000);

    // billing and ledger run out (a paused process); b takes ledger over.
    await ctx.redis.pexpire(ctx.keys.lease('billing'), 1);
    await ctx.redis.pexpire(ctx.keys.lease('ledger'), 1);
    await sleep(20);
    const b = await acquireLeases(other, ctx.keys, 'b', ['ledger'], LONG_TTL, 1);
    expect(b).toEqual(new Map([['ledger', 'b|2']]));

    expect(await renewLeases(ctx.redis, ctx.keys, held, LONG_TTL)).toEqual(['billing', 'ledger']);
    // Renewing a lost lease neither brings it back nor touches the new holder's.
    expect(await ctx.redis.exists(ctx.keys.lease('billing'))).toBe(0);
    expect(await ctx.redis.get(ctx.keys.lease('ledger'))).toBe('b|2');
  });
});

describe('releaseLeases', () => {
  it('frees the caller’s leases at once, so another sender takes them without waiting', async () => {
    const a = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing', 'ledger'], LONG_TTL, 2);
    await releaseLeases(ctx.redis, ctx.keys, a);
    expect(await ctx.redis.exists(ctx.keys.lease('billing'), ctx.keys.lease('ledger'))).toBe(0);

    const b = await acquireLeases(other, ctx.keys, 'b', ['billing', 'ledger'], LONG_TTL, 2);
    expect(b).toEqual(
      new Map([
        ['billing', 'b|2'],
        ['ledger', 'b|2'],
      ]),
    );
  });

  it('leaves alone a lease that meanwhile went to another sender', async () => {
    const stale = await acquireLeases(ctx.redis, ctx.keys, 'a', ['billing'], SHORT_TTL, 1);
    await sleep(SHORT_TTL + 100);
    await acquireLeases(other, ctx.keys, 'b', ['billing'], LONG_TTL, 1);

    await releaseLeases(ctx.redis, ctx.keys, stale);
    expect(await ctx.redis.get(ctx.keys.lease('billing'))).toBe('b|2');
  });
});

describe('senderHeartbeat', () => {
  it('counts the live senders, forgets silent ones and lets a stopping sender withdraw', async () => {
    const liveMs = 300;
    expect(await senderHeartbeat(ctx.redis, ctx.keys, 'a', liveMs, true)).toBe(1);
    expect(await senderHeartbeat(other, ctx.keys, 'b', liveMs, true)).toBe(2);
    // Announcing again does not count a sender twice.
    expect(await senderHeartbeat(ctx.redis, ctx.keys, 'a', liveMs, true)).toBe(2);
    expect((await ctx.redis.zrange(ctx.keys.senders, 0, -1)).sort()).toEqual(['a', 'b']);

    // a withdraws on shutdown.
    expect(await senderHeartbeat(ctx.redis, ctx.keys, 'a', liveMs, false)).toBe(1);
    expect(await ctx.redis.zrange(ctx.keys.senders, 0, -1)).toEqual(['b']);

    // b goes silent (crashed): after liveMs it no longer counts.
    await sleep(liveMs + 100);
    expect(await senderHeartbeat(ctx.redis, ctx.keys, 'c', liveMs, true)).toBe(1);
    expect(await ctx.redis.zrange(ctx.keys.senders, 0, -1)).toEqual(['c']);
  });
});
