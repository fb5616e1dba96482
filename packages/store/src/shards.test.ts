import { describe, expect, it } from 'vitest';
import { KeySchema } from './keys.js';
import { CLUSTER_SLOTS, crc16, destinationHash, keySlot, Shards, shardTag } from './shards.js';

/** The slot ranges `redis-cli --cluster create` gives `masters` masters. */
function masterOfSlot(slot: number, masters: number): number {
  const per = CLUSTER_SLOTS / masters;
  return Math.min(masters - 1, Math.floor(slot / per));
}

describe('keySlot', () => {
  it('hashes as CLUSTER KEYSLOT does: CRC16/XMODEM of the hash tag, else of the whole key', () => {
    expect(crc16(new TextEncoder().encode('123456789'))).toBe(0x31c3);
    // The examples of the CLUSTER KEYSLOT documentation.
    expect(keySlot('somekey')).toBe(11058);
    expect(keySlot('foo{hash_tag}')).toBe(2515);
    expect(keySlot('bar{hash_tag}')).toBe(2515);
    // An empty tag is no tag: the whole key is hashed.
    expect(keySlot('{}x')).toBe(crc16(new TextEncoder().encode('{}x')) % CLUSTER_SLOTS);
    expect(keySlot('{reseq}:in')).toBe(keySlot('{reseq}:res:billing'));
  });
});

describe('Shards with one shard (the default)', () => {
  it("is exactly the single-Redis layout: every key under '{<prefix>}'", () => {
    const shards = new Shards('reseq');
    const plain = new KeySchema('reseq');
    expect(shards.count).toBe(1);
    for (const destination of ['billing', 'ledger', 'a/b c', '日本']) {
      const keys = shards.forDestination(destination);
      expect(shards.shardOf(destination)).toBe(0);
      expect(keys.input).toBe('{reseq}:in');
      expect(keys.results(destination)).toBe(plain.results(destination));
      expect(keys.lease(destination)).toBe(`{reseq}:lease:${destination}`);
    }
    expect(shards.all.map((k) => k.tag)).toEqual(['{reseq}']);
    expect(shards.home.senders).toBe('{reseq}:senders');
    expect(shardTag('orders', 0, 1)).toBe('{orders}');
  });

  it('runs a per-shard step once, with every item, as without sharding', async () => {
    const shards = new Shards('reseq');
    const calls: string[][] = [];
    const out = await shards.perShard(
      ['a', 'b', 'c'],
      (d) => d,
      (keys, items) => {
        calls.push(items);
        return Promise.resolve(items.map((d) => `${keys.tag}:${d}`));
      },
    );
    expect(calls).toEqual([['a', 'b', 'c']]);
    expect(out).toEqual(['{reseq}:a', '{reseq}:b', '{reseq}:c']);
  });
});

describe('Shards with several shards', () => {
  it('maps a destination to the same shard in every process and version', () => {
    // Pinned: changing the hash would move destinations away from their keys.
    expect(destinationHash('billing')).toBe(294503324);
    expect(destinationHash('')).toBe(2872998923);
    const shards = new Shards('reseq', 3);
    expect(['billing', 'ledger', 'audit', 'd'].map((d) => shards.shardOf(d))).toEqual([2, 0, 2, 1]);
    expect(new Shards('other-prefix', 3).shardOf('billing')).toBe(2);
    expect(shardTag('reseq', 1, 3)).toBe('{reseq|1.1}');
    expect(new Shards('reseq', 3).forDestination('billing').results('billing')).toBe('{reseq|2.1}:res:billing');
  });

  it('spreads destinations evenly over the shards', () => {
    for (const count of [3, 8, 16]) {
      const shards = new Shards('p', count);
      const per = new Array<number>(count).fill(0);
      for (let i = 0; i < 8000; i++) per[shards.shardOf(`dest-${i}`)]! += 1;
      const expected = 8000 / count;
      for (const n of per)
        expect(Math.abs(n - expected), `${count} shards: ${per.join(' ')}`).toBeLessThan(expected * 0.2);
    }
  });

  it("puts shard n of N in part n of N of the slot range, so N shards spread over a default cluster's masters", () => {
    for (const prefix of ['reseq', 'orders', 't-x-1234abcd']) {
      for (const count of [2, 3, 4, 6, 9, 12, 64]) {
        const shards = new Shards(prefix, count);
        const slots = shards.all.map((keys) => keySlot(keys.input));
        slots.forEach((slot, n) => {
          expect(Math.floor(slot / (CLUSTER_SLOTS / count)), `${prefix} shard ${n} of ${count}`).toBe(n);
        });
        for (const masters of [2, 3, 4, 6]) {
          if (count % masters !== 0) continue;
          const perMaster = new Array<number>(masters).fill(0);
          for (const slot of slots) perMaster[masterOfSlot(slot, masters)]! += 1;
          expect(perMaster, `${prefix}: ${count} shards on ${masters} masters`).toEqual(
            new Array<number>(masters).fill(count / masters),
          );
        }
        // Every key of a shard is in one slot: each script touches one.
        const keys = shards.keys(count - 1);
        const sameSlot = [keys.input, keys.sequences, keys.delivered, keys.buffer('x'), keys.lease('y'), keys.waitMark];
        expect(new Set(sameSlot.map(keySlot)).size).toBe(1);
      }
    }
  });

  it('keeps the pipeline-wide keys on the pipeline tag, apart from the shards', () => {
    const shards = new Shards('reseq', 4);
    expect(shards.home.tag).toBe('{reseq}');
    expect(shards.home.meta).toBe('{reseq}:meta');
    expect(shards.all.map((k) => k.tag)).not.toContain('{reseq}');
    expect(new Set(shards.all.map((k) => k.tag)).size).toBe(4);
    expect(shards.all.map((k) => k.shard)).toEqual([0, 1, 2, 3]);
  });

  it('runs a per-shard step once per shard and answers in the items’ order', async () => {
    const shards = new Shards('reseq', 3);
    const items = ['billing', 'ledger', 'audit', 'd', 'ledger'];
    const calls = new Map<number, string[]>();
    const out = await shards.perShard(
      items,
      (d) => d,
      async (keys, own) => {
        calls.set(keys.shard, own);
        await new Promise((resolve) => setTimeout(resolve, 3 - keys.shard));
        return own.map((d) => `${keys.shard}:${d}`);
      },
    );
    expect(out).toEqual(['2:billing', '0:ledger', '2:audit', '1:d', '0:ledger']);
    expect(Object.fromEntries(calls)).toEqual({ 0: ['ledger', 'ledger'], 1: ['d'], 2: ['billing', 'audit'] });
  });

  it('refuses a shard count outside 1..1024 and a shard it does not have', () => {
    expect(() => new Shards('p', 0)).toThrow(RangeError);
    expect(() => new Shards('p', 1025)).toThrow(RangeError);
    expect(() => new Shards('p', 1.5)).toThrow(RangeError);
    expect(() => new Shards('p', 3).keys(3)).toThrow(RangeError);
  });
});
