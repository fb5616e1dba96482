/**
 * The hedge requests against a real Redis (lua/hedge-poll.lua): a request goes to one other
 * worker, never back to its requester; requests of completed entries are cleaned; a watcher
 * learns which entries another copy completed; and of two copies that complete, only the first
 * is recorded.
 */
import {
  WORKER_GROUP,
  completeBatch,
  ensureWorkerGroup,
  pollHedges,
  readInput,
  requestHedge,
  type InputEntry,
  type ReseqRedis,
} from '@reseq/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ingest, openStore, resultEntries, type StoreContext } from './store-context.js';

let ctx: StoreContext;
let blocking: ReseqRedis;
beforeEach(async (test) => {
  ctx = await openStore(test.task.name);
  blocking = await ctx.connect('blocking');
});
afterEach(async () => {
  await ctx.close();
});

/** Writes `n` messages to billing; `owner` reads them all. */
async function seed(n: number, owner = 'w1'): Promise<InputEntry[]> {
  for (let i = 1; i <= n; i++) await ingest(ctx, ['billing'], { n: i }, `msg-${i}`);
  await ensureWorkerGroup(ctx.redis, ctx.keys);
  return (await readInput(blocking, ctx.keys, owner, '>', 100, 100)).entries;
}

function value(entry: InputEntry, body: unknown) {
  return { entry, kind: 'value' as const, attempts: 1, body: JSON.stringify(body) };
}

describe('hedge requests', () => {
  it('hands a request to one other worker only, with the entry and attempt, never to its requester', async () => {
    const [e1, e2] = await seed(2);
    await requestHedge(ctx.redis, ctx.keys, e1!.entryId, 2, 'w1', 1000);
    await requestHedge(ctx.redis, ctx.keys, e2!.entryId, 1, 'w1', 1001);

    expect((await pollHedges(ctx.redis, ctx.keys, 'w1', 10, [])).taken).toEqual([]);
    const first = await pollHedges(ctx.redis, ctx.keys, 'w2', 1, []);
    expect(first.taken).toEqual([{ entry: e1, attempt: 2, requester: 'w1' }]);
    const second = await pollHedges(ctx.redis, ctx.keys, 'w3', 10, []);
    expect(second.taken).toEqual([{ entry: e2, attempt: 1, requester: 'w1' }]);
    expect((await pollHedges(ctx.redis, ctx.keys, 'w4', 10, [])).taken).toEqual([]);
    expect(await ctx.redis.zcard(ctx.keys.hedges)).toBe(0);
    // Taking a request moves nothing in the group: the requester still holds both entries.
    const pending = (await ctx.redis.xpending(ctx.keys.input, WORKER_GROUP, '-', '+', 10)) as [string, string][];
    expect(pending.map(([, consumer]) => consumer)).toEqual(['w1', 'w1']);
  });

  it('without room takes nothing; a look with room cleans requests of completed entries, even its own', async () => {
    const [e1, e2] = await seed(2);
    await requestHedge(ctx.redis, ctx.keys, e1!.entryId, 1, 'w1', 1000);
    await requestHedge(ctx.redis, ctx.keys, e2!.entryId, 1, 'w1', 1001);
    await completeBatch(ctx.redis, ctx.keys, [value(e1!, 'done')]);

    expect(await pollHedges(ctx.redis, ctx.keys, 'w2', 0, [])).toEqual({ taken: [], gone: [] });
    expect(await ctx.redis.zcard(ctx.keys.hedges)).toBe(2);
    // The requester looks (with room): its completed request goes, its live one stays for others.
    expect(await pollHedges(ctx.redis, ctx.keys, 'w1', 5, [])).toEqual({ taken: [], gone: [] });
    expect(await ctx.redis.zrange(ctx.keys.hedges, 0, -1)).toEqual([`${e2!.entryId}|1|w1`]);
  });

  it('tells a watcher which entries another copy completed; only the first completion is recorded', async () => {
    const [e1, e2] = await seed(2);
    await requestHedge(ctx.redis, ctx.keys, e1!.entryId, 1, 'w1');
    const { taken } = await pollHedges(ctx.redis, ctx.keys, 'w2', 10, []);
    expect(taken.map((t) => t.entry.entryId)).toEqual([e1!.entryId]);

    // The hedge copy (w2) finishes first; the requester (w1) finishes later.
    expect(await completeBatch(ctx.redis, ctx.keys, [value(taken[0]!.entry, 'from the hedge')])).toEqual({
      written: 1,
      duplicates: 0,
    });
    const watched = await pollHedges(ctx.redis, ctx.keys, 'w1', 0, [e1!.entryId, e2!.entryId]);
    expect(watched.gone).toEqual([e1!.entryId]);
    expect(await completeBatch(ctx.redis, ctx.keys, [value(e1!, 'from the first copy')])).toEqual({
      written: 0,
      duplicates: 1,
    });
    expect((await resultEntries(ctx, 'billing')).map((r) => r.body)).toEqual(['"from the hedge"']);
  });

  it('drops a request it cannot read rather than failing every look', async () => {
    const [e1] = await seed(1);
    await ctx.redis.zadd(ctx.keys.hedges, 1, 'not a request', 2, 'x|1|w1');
    await requestHedge(ctx.redis, ctx.keys, e1!.entryId, 1, 'w1', 3);
    const { taken } = await pollHedges(ctx.redis, ctx.keys, 'w2', 10, []);
    expect(taken.map((t) => t.entry.entryId)).toEqual([e1!.entryId]);
    expect(await ctx.redis.zcard(ctx.keys.hedges)).toBe(0);
  });
});
