/**
 * Sharded keys (RESEQ_SHARDS) against a real Redis: a batch written shard by shard lands each
 * destination's entries in its own shard's input stream with its own contiguous sequences, a
 * client retry is answered the same, a refusal on one shard leaves the others' parts to the
 * retry, and a process started with another shard count than the pipeline's keys is refused.
 */
import { createLogger } from '@reseq/runtime';
import { ConfigError } from '@reseq/config';
import {
  BacklogFullError,
  checkShardLayout,
  connectRedis,
  createRedis,
  decodeInputEntry,
  migrateShards,
  recordedShardCount,
  ShardMigrationRefusedError,
  Shards,
  writeIngestBatch,
  writeShardedIngestBatch,
  type IngestRequest,
  type ReseqRedis,
} from '@reseq/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { deleteKeys, uniquePrefix } from '../fixtures/redis.js';
import { INGEST } from './store-context.js';

const logger = createLogger({ app: 'test', level: 'silent' });

let redis: ReseqRedis;
let prefix: string;
beforeEach(async (test) => {
  const url = inject('redisUrl');
  if (new URL(url).port === '6379') throw new Error(`refusing to run against the shared Redis at ${url}`);
  redis = createRedis({ url, name: 'test-shards', logger, mode: 'wait' });
  await connectRedis(redis);
  prefix = uniquePrefix(test.task.name);
});
afterEach(async () => {
  // `{<prefix>}` and every shard's `{<prefix>|<n>.<k>}`.
  await deleteKeys(redis, `{${prefix}`);
  redis.disconnect();
});

function message(id: string, destinations: string[], clientId = true): IngestRequest {
  return { id, clientId, destinations, payload: JSON.stringify({ id }) };
}

/** Each input entry of a shard as "<destination>#<sequence>:<message id>". */
async function entriesOf(shards: Shards, shard: number): Promise<string[]> {
  const raw = await redis.xrange(shards.keys(shard).input, '-', '+');
  return raw.map(([entryId, fields]) => {
    const entry = decodeInputEntry(entryId, fields)!;
    return `${entry.destination}#${entry.sequence}:${entry.id}`;
  });
}

describe('writeShardedIngestBatch', () => {
  // billing and audit are on shard 2 of 3, ledger on shard 0, d on shard 1 (shards.test.ts pins it).
  it("writes each destination's part on its shard, numbered there, and answers in the client's order", async () => {
    const shards = new Shards(prefix, 3);
    expect(['billing', 'audit', 'ledger', 'd'].map((d) => shards.shardOf(d))).toEqual([2, 2, 0, 1]);
    const outcomes = await writeShardedIngestBatch(
      redis,
      shards,
      [
        message('m1', ['ledger', 'billing', 'd']),
        message('m2', ['billing']),
        message('m3', ['audit', 'ledger'], false),
        message('m4', ['d', 'billing']),
      ],
      INGEST,
    );
    expect(outcomes.map((o) => JSON.stringify(o.sequences))).toEqual([
      '{"ledger":1,"billing":1,"d":1}',
      '{"billing":2}',
      '{"audit":1,"ledger":2}',
      '{"d":2,"billing":3}',
    ]);
    expect(outcomes.every((o) => !o.duplicate && o.refused === undefined)).toBe(true);
    expect(await entriesOf(shards, 0)).toEqual(['ledger#1:m1', 'ledger#2:m3']);
    expect(await entriesOf(shards, 1)).toEqual(['d#1:m1', 'd#2:m4']);
    expect(await entriesOf(shards, 2)).toEqual(['billing#1:m1', 'billing#2:m2', 'audit#1:m3', 'billing#3:m4']);
    // Nothing under the pipeline's own tag: it holds only pipeline-wide keys.
    expect(await redis.exists(shards.home.input, shards.home.sequences)).toBe(0);

    // A client's retry of m1 and m4 is answered the same, and writes nothing.
    const again = await writeShardedIngestBatch(
      redis,
      shards,
      [message('m4', ['d', 'billing']), message('m1', ['ledger', 'billing', 'd'])],
      INGEST,
    );
    expect(again.map((o) => [o.duplicate, o.sequences])).toEqual([
      [true, { d: 2, billing: 3 }],
      [true, { ledger: 1, billing: 1, d: 1 }],
    ]);
    expect((await entriesOf(shards, 2)).length).toBe(4);
  });

  it('refuses only the messages that touch a refusing shard; a retry with the same id writes just what was missing', async () => {
    const shards = new Shards(prefix, 3);
    // Shard 2's input stream is at the backlog limit (3): its part is refused, the others go on.
    const limits = { ...INGEST, maxBacklog: 3 };
    await writeShardedIngestBatch(
      redis,
      shards,
      [message('f1', ['billing']), message('f2', ['audit']), message('f3', ['audit'])],
      limits,
    );
    const outcomes = await writeShardedIngestBatch(
      redis,
      shards,
      [message('x', ['ledger', 'billing']), message('y', ['ledger']), message('z', ['d'])],
      limits,
    );
    expect(outcomes[0]!.refused).toBeInstanceOf(BacklogFullError);
    expect(outcomes[1]).toEqual({ sequences: { ledger: 2 }, duplicate: false });
    expect(outcomes[2]).toEqual({ sequences: { d: 1 }, duplicate: false });
    // x's ledger part is written (shard by shard); its billing part is not.
    expect(await entriesOf(shards, 0)).toEqual(['ledger#1:x', 'ledger#2:y']);

    // Room again on shard 2: the retry of x finds its ledger part and writes its billing part.
    await redis.del(shards.keys(2).input);
    const [retried] = await writeShardedIngestBatch(redis, shards, [message('x', ['ledger', 'billing'])], limits);
    expect(retried).toEqual({ sequences: { ledger: 1, billing: 2 }, duplicate: false });
    expect(await entriesOf(shards, 0)).toEqual(['ledger#1:x', 'ledger#2:y']);
    expect(await entriesOf(shards, 2)).toEqual(['billing#2:x']);
    const [once] = await writeShardedIngestBatch(redis, shards, [message('x', ['ledger', 'billing'])], limits);
    expect(once).toEqual({ sequences: { ledger: 1, billing: 2 }, duplicate: true });
  });

  it('reports a full destination window on one shard for that message only', async () => {
    const shards = new Shards(prefix, 3);
    const limits = { ...INGEST, destinationWindow: 1 };
    const outcomes = await writeShardedIngestBatch(
      redis,
      shards,
      [message('a', ['billing']), message('b', ['ledger', 'billing']), message('c', ['ledger'])],
      limits,
    );
    expect(outcomes[0]).toEqual({ sequences: { billing: 1 }, duplicate: false });
    expect(outcomes[1]).toMatchObject({ windowFull: 'billing', duplicate: false });
    // b's ledger part went in before its billing part was refused; c then found ledger's window full.
    expect(outcomes[1]!.sequences).toEqual({ ledger: 1 });
    expect(outcomes[2]).toMatchObject({ windowFull: 'ledger' });
  });

  it('is exactly the single-shard write with one shard', async () => {
    const shards = new Shards(prefix);
    const outcomes = await writeShardedIngestBatch(redis, shards, [message('m1', ['billing', 'ledger'])], INGEST);
    expect(outcomes).toEqual([{ sequences: { billing: 1, ledger: 1 }, duplicate: false }]);
    expect(await redis.xlen(`{${prefix}}:in`)).toBe(2);
    await expect(
      writeShardedIngestBatch(redis, shards, [message('m2', ['billing'])], { ...INGEST, maxBacklog: 1 }),
    ).rejects.toBeInstanceOf(BacklogFullError);
  });
});

describe('checkShardLayout', () => {
  it('records a count above 1 on a new pipeline, writes nothing for 1, and takes the recorded count again', async () => {
    await checkShardLayout(redis, new Shards(prefix), { record: true });
    expect(await redis.exists(`{${prefix}}:meta`)).toBe(0);
    await checkShardLayout(redis, new Shards(prefix, 3), { record: true });
    expect(await redis.hgetall(`{${prefix}}:meta`)).toEqual({ shards: '3' });
    expect(await recordedShardCount(redis, new Shards(prefix))).toBe(3);
    await checkShardLayout(redis, new Shards(prefix, 3), { record: true });
    await checkShardLayout(redis, new Shards(prefix, 3), { record: false });
  });

  it('refuses another count while the recorded layout holds state, with a coded config error', async () => {
    const three = new Shards(prefix, 3);
    await checkShardLayout(redis, three, { record: true });
    await writeShardedIngestBatch(redis, three, [message('m1', ['d'])], INGEST);
    for (const count of [1, 2, 4]) {
      const err = await checkShardLayout(redis, new Shards(prefix, count), { record: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('CONFIG_INVALID');
      expect((err as ConfigError).problems[0]).toMatch(
        /^env RESEQ_SHARDS: \d+, but the pipeline .* laid out over 3 shard/,
      );
    }
    expect(await recordedShardCount(redis, three)).toBe(3);
  });

  it('refuses more shards for a pipeline that holds single-Redis state (no record)', async () => {
    await writeIngestBatch(redis, new Shards(prefix).home, [message('m1', ['billing'])], INGEST);
    await expect(checkShardLayout(redis, new Shards(prefix, 3), { record: true })).rejects.toThrow(
      /RESEQ_SHARDS: 3, but the pipeline .* laid out over 1 shard/,
    );
    expect(await redis.exists(`{${prefix}}:meta`)).toBe(0);
  });

  it('lets a pipeline without state change its count (a drained pipeline whose keys were removed)', async () => {
    await checkShardLayout(redis, new Shards(prefix, 3), { record: true });
    await checkShardLayout(redis, new Shards(prefix, 4), { record: true });
    expect(await recordedShardCount(redis, new Shards(prefix))).toBe(4);
    await checkShardLayout(redis, new Shards(prefix), { record: true });
    expect(await redis.exists(`{${prefix}}:meta`)).toBe(0);
  });
});

describe('migrateShards', () => {
  it('refuses a pipeline with messages in flight or dead letters, and changes nothing', async () => {
    const one = new Shards(prefix);
    await writeIngestBatch(redis, one.home, [message('m1', ['billing', 'ledger'])], INGEST);
    await redis.xadd(one.home.deadLetters, '*', 'd', 'ledger', 's', '1');
    const err = await migrateShards(redis, one, new Shards(prefix, 3), {
      destinations: ['billing', 'ledger'],
      liveMs: 1000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShardMigrationRefusedError);
    expect((err as ShardMigrationRefusedError).code).toBe('SHARD_MIGRATION_REFUSED');
    expect((err as ShardMigrationRefusedError).reasons).toEqual([
      `{${prefix}}:in holds 2 message(s) not yet transformed`,
      `{${prefix}}:dlq holds 1 dead letter(s): retry or skip them`,
      'billing: 1 message(s) not delivered yet',
      'ledger: 1 message(s) not delivered yet',
    ]);
    expect(await redis.exists(`{${prefix}}:meta`)).toBe(0);
    expect(await redis.hget(one.home.sequences, 'billing')).toBe('1');
  });
});
