import { describe, expect, it } from 'vitest';
import { EngineSlots, ReadAhead, SlotPool, slotsTaken } from './slot-pool.js';

/** An engine that "runs" what it starts until `finish` is called. */
function engine(pool: SlotPool) {
  const running = new Set<string>();
  const started: string[] = [];
  const slots = new EngineSlots<string>(
    pool,
    () => running.size,
    (item) => {
      running.add(item);
      started.push(item);
    },
  );
  return {
    slots,
    running,
    started,
    finish(item: string) {
      running.delete(item);
      pool.wake();
    },
  };
}

describe('SlotPool', () => {
  it('never runs more than its capacity over all engines; what waits starts as slots free, in order', () => {
    const pool = new SlotPool(3);
    const a = engine(pool);
    const b = engine(pool);
    // Two shards' reads came back at once with more than the free slots.
    for (const item of ['a1', 'a2']) a.slots.admit(item);
    for (const item of ['b1', 'b2', 'b3']) b.slots.admit(item);
    expect(pool.inFlight).toBe(3);
    expect([...a.started, ...b.started]).toEqual(['a1', 'a2', 'b1']);
    expect(b.slots.waiting).toEqual(['b2', 'b3']);
    // An engine with entries waiting has no room to read more.
    expect(b.slots.free).toBe(-2);
    expect(a.slots.free).toBe(0);

    a.finish('a1');
    expect(b.started).toEqual(['b1', 'b2']);
    expect(pool.inFlight).toBe(3);
    a.finish('a2');
    expect(b.started).toEqual(['b1', 'b2', 'b3']);
    expect(b.slots.waiting).toEqual([]);
    b.finish('b1');
    expect(pool.free).toBe(1);
    expect(a.slots.free).toBe(1);
  });

  it('wakes every waiter when slots change', async () => {
    const pool = new SlotPool(1);
    const a = engine(pool);
    a.slots.admit('x');
    let woken = 0;
    const waits = [pool.changed().then(() => woken++), pool.changed().then(() => woken++)];
    a.finish('x');
    await Promise.all(waits);
    expect(woken).toBe(2);
  });

  it('starts nothing after close, and hands back what still waited', () => {
    const pool = new SlotPool(1);
    const a = engine(pool);
    a.slots.admit('x');
    a.slots.admit('y');
    a.slots.admit('z');
    expect(a.slots.close()).toEqual(['y', 'z']);
    a.finish('x');
    expect(a.started).toEqual(['x']);
    a.slots.admit('late');
    expect(a.started).toEqual(['x']);
  });

  it('reports entries that waited long enough to be touched, once per interval', () => {
    const pool = new SlotPool(0);
    const a = engine(pool);
    a.slots.admit('x');
    const now = Date.now();
    expect(a.slots.waitingLongerThan(1000, now)).toEqual([]);
    expect(a.slots.waitingLongerThan(1000, now + 1000)).toEqual(['x']);
    expect(a.slots.waitingLongerThan(1000, now + 1500)).toEqual([]);
  });
});

describe('slotsTaken', () => {
  it('frees a slot when its transform settles, while its outcome is still being recorded', () => {
    // 8 slots; 10 entries held, 4 of them settled and being recorded: 6 transforms run.
    expect(slotsTaken(10, 4, 8)).toBe(6);
    expect(slotsTaken(8, 0, 8)).toBe(8);
    expect(slotsTaken(8, 8, 8)).toBe(0);
  });

  it('counts settled outcomes beyond the capacity as taken slots, so a slow Redis stops the reads', () => {
    // 12 outcomes wait for their write with 8 slots: 4 of them take a slot each, and 4 transforms
    // run, so nothing is free and the worker reads no more.
    expect(slotsTaken(16, 12, 8)).toBe(8);
    expect(slotsTaken(20, 20, 8)).toBe(12);
  });

  it('with an engine that records slowly, never starts more transforms than the capacity', () => {
    const pool = new SlotPool(4);
    const transforms = new Set<string>();
    const recording = new Set<string>();
    let most = 0;
    const slots = new EngineSlots<string>(
      pool,
      () => slotsTaken(transforms.size + recording.size, recording.size, pool.capacity),
      (item) => {
        transforms.add(item);
        most = Math.max(most, transforms.size);
      },
    );
    for (let i = 0; i < 20; i++) slots.admit(`e${i}`);
    // Every transform settles; no write ever completes.
    for (let round = 0; round < 5; round++) {
      for (const item of [...transforms]) {
        transforms.delete(item);
        recording.add(item);
        pool.wake();
      }
    }
    expect(most).toBe(4);
    // 8 outcomes wait for their write: 4 besides the slots, and 4 that take every slot, so
    // nothing more starts until some are written.
    expect(recording.size).toBe(8);
    expect(transforms.size).toBe(0);
    expect(slots.waiting.length).toBe(12);
    expect(pool.free).toBe(0);
  });
});

describe('ReadAhead', () => {
  it('reads nothing ahead before it knows how long transforms and reads take', () => {
    const ahead = new ReadAhead();
    expect(ahead.extra(16, 256)).toBe(0);
    ahead.settled(1);
    expect(ahead.extra(16, 256)).toBe(0);
    ahead.read(5);
    expect(ahead.extra(16, 256)).toBe(80);
  });

  it('reads ahead what the slots finish during one read, at most a batch', () => {
    const ahead = new ReadAhead();
    ahead.read(4);
    ahead.settled(2);
    // 16 slots finishing a 2 ms transform each during a 4 ms read: 32 entries.
    expect(ahead.extra(16, 256)).toBe(32);
    expect(ahead.extra(16, 20)).toBe(20);
    expect(ahead.fast).toBe(true);
    // Transforms of no time at all: a full batch.
    const instant = new ReadAhead();
    instant.read(4);
    instant.settled(0);
    expect(instant.extra(128, 256)).toBe(256);
  });

  it('reads nothing ahead of slow transforms, and follows the transforms as they change', () => {
    const ahead = new ReadAhead();
    ahead.read(2);
    ahead.settled(750);
    // 16 × 2 / 750: not one entry finishes during a read.
    expect(ahead.extra(16, 256)).toBe(0);
    expect(ahead.fast).toBe(false);
    // Transforms of 1 ms again: the average comes down to about 1 ms, about 32 entries a read.
    for (let i = 0; i < 200; i++) ahead.settled(1);
    expect(ahead.extra(16, 256)).toBeGreaterThanOrEqual(31);
    expect(ahead.extra(16, 256)).toBeLessThanOrEqual(32);
    for (let i = 0; i < 10; i++) ahead.settled(1000);
    expect(ahead.extra(16, 256)).toBe(0);
  });
});
