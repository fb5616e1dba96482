/**
 * The Lua scripts after Redis lost its script cache (a restart or a failover to a replica that
 * never saw them, simulated with SCRIPT FLUSH): every typed operation still works, on the same
 * connection, because ioredis falls back from EVALSHA to EVAL on NOSCRIPT.
 */
import {
  SCRIPT_NAMES,
  acquireLeases,
  advanceDelivered,
  bufferResults,
  completeBatch,
  ensureWorkerGroup,
  loadLaneState,
  readInput,
  releaseLeases,
  renewLeases,
  senderHeartbeat,
  writeIngestBatch,
} from '@reseq/store';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INGEST, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
});
afterEach(async () => {
  await ctx.close();
});

/** SHA1 of every script, as EVALSHA knows it. */
function scriptShas(): string[] {
  const luaDir = new URL('../../packages/store/lua/', import.meta.url);
  return SCRIPT_NAMES.map((name) =>
    createHash('sha1')
      .update(readFileSync(new URL(`${name}.lua`, luaDir), 'utf8'))
      .digest('hex'),
  );
}

async function flushScripts(): Promise<void> {
  // Only the script cache: never FLUSHALL/FLUSHDB on a shared server.
  await ctx.redis.script('FLUSH');
}

describe('scripts after SCRIPT FLUSH', () => {
  it('runs every script again, with the right outcome, after the cache was flushed before each call', async () => {
    const write = (id: string) =>
      writeIngestBatch(
        ctx.redis,
        ctx.keys,
        [{ id, clientId: true, destinations: ['billing'], payload: `"${id}"` }],
        INGEST,
      );

    expect((await write('m1'))[0]!.sequences).toEqual({ billing: 1 });
    await flushScripts();
    expect(await ctx.redis.script('EXISTS', ...scriptShas())).toEqual(SCRIPT_NAMES.map(() => 0));
    expect((await write('m2'))[0]!.sequences).toEqual({ billing: 2 });
    await flushScripts();
    expect((await write('m1'))[0]).toEqual({ duplicate: true, sequences: { billing: 1 } });

    await ensureWorkerGroup(ctx.redis, ctx.keys);
    const blocking = await ctx.connect('blocking');
    const { entries } = await readInput(blocking, ctx.keys, 'w', '>', 10, 100);
    expect(entries.map((e) => e.sequence)).toEqual([1, 2]);
    await flushScripts();
    expect(
      await completeBatch(
        ctx.redis,
        ctx.keys,
        entries.map((entry) => ({ entry, kind: 'value' as const, attempts: 1, body: entry.payload })),
      ),
    ).toEqual({ written: 2, duplicates: 0 });

    await flushScripts();
    expect(await senderHeartbeat(ctx.redis, ctx.keys, 'sender-a', 10_000, true)).toBe(1);
    await flushScripts();
    const leases = await acquireLeases(ctx.redis, ctx.keys, 'sender-a', ['billing'], 10_000, 1);
    expect(leases).toEqual(new Map([['billing', 'sender-a|1']]));
    await flushScripts();
    expect(await renewLeases(ctx.redis, ctx.keys, leases, 10_000)).toEqual([]);

    await flushScripts();
    const results = await resultEntries(ctx, 'billing');
    const leaseValue = leases.get('billing')!;
    expect(
      await bufferResults(ctx.redis, ctx.keys, new Map([['billing', { leaseValue, entries: results, malformed: [] }]])),
    ).toEqual(new Map([['billing', 0]]));
    await flushScripts();
    expect(
      await advanceDelivered(ctx.redis, ctx.keys, [{ destination: 'billing', leaseValue, from: 1, to: 2 }]),
    ).toEqual(['recorded']);
    expect(await loadLaneState(ctx.redis, ctx.keys, 'billing')).toEqual({
      delivered: 2,
      blockedAt: undefined,
      buffered: [],
    });

    await flushScripts();
    await releaseLeases(ctx.redis, ctx.keys, leases);
    expect(await ctx.redis.exists(ctx.keys.lease('billing'))).toBe(0);
  });

  it('works on a connection that never ran a script before the flush, and in calls running at the same time', async () => {
    const fresh = await ctx.connect('fresh');
    await flushScripts();
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        writeIngestBatch(
          fresh,
          ctx.keys,
          [{ id: `c${i}`, clientId: false, destinations: ['billing'], payload: '1' }],
          INGEST,
        ),
      ),
    );
    expect(outcomes.map(([o]) => o!.sequences.billing).sort((a, b) => a! - b!)).toEqual(
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    expect(await ctx.redis.xlen(ctx.keys.input)).toBe(10);
  });
});
