import { describe, expect, it } from 'vitest';
import { EngineSlots, SlotPool } from './slot-pool.js';

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
