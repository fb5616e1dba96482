import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReorderBuffer } from './reorder-buffer.js';

/** Offers arrivals one by one and releases whatever became ready, like a sender lane does. */
function drain(buffer: ReorderBuffer<string>, arrivals: readonly number[]): number[] {
  const released: number[] = [];
  for (const seq of arrivals) {
    buffer.offer(seq, `m${seq}`);
    while (buffer.peek() !== undefined) {
      const item = buffer.advance();
      expect(item).toBe(`m${buffer.delivered}`);
      released.push(buffer.delivered);
    }
  }
  return released;
}

describe('ReorderBuffer', () => {
  it('releases results in sequence order whatever order they complete in', () => {
    const buffer = new ReorderBuffer<string>();
    expect(drain(buffer, [3, 1, 2, 5, 4])).toEqual([1, 2, 3, 4, 5]);
    expect(buffer.size).toBe(0);
  });

  it('holds everything behind a missing sequence and reports the gap', () => {
    const buffer = new ReorderBuffer<string>();
    expect(drain(buffer, [2, 3, 4])).toEqual([]);
    expect(buffer.waitingFor()).toEqual({ next: 1, lowestHeld: 2 });
    expect(drain(buffer, [1])).toEqual([1, 2, 3, 4]);
    expect(buffer.waitingFor()).toBeUndefined();
  });

  it('drops duplicates: late arrivals of settled sequences and second copies of held ones', () => {
    const buffer = new ReorderBuffer<string>(10);
    expect(buffer.offer(10, 'late')).toBe('duplicate');
    expect(buffer.offer(3, 'late')).toBe('duplicate');
    expect(buffer.offer(12, 'first')).toBe('buffered');
    expect(buffer.offer(12, 'second')).toBe('duplicate');
    buffer.offer(11, 'x');
    buffer.advance();
    expect(buffer.advance()).toBe('first');
  });

  it('resumes after the settled position loaded from Redis', () => {
    const buffer = new ReorderBuffer<string>(41);
    expect(buffer.next).toBe(42);
    expect(drain(buffer, [43, 42])).toEqual([42, 43]);
  });

  it('refuses to settle a gap, which would reorder', () => {
    const buffer = new ReorderBuffer<string>();
    buffer.offer(2, 'm2');
    expect(() => buffer.advance()).toThrow(/has not arrived/);
    expect(buffer.delivered).toBe(0);
  });

  it('rejects sequences that cannot exist', () => {
    const buffer = new ReorderBuffer<string>();
    expect(() => buffer.offer(0, 'x')).toThrow(RangeError);
    expect(() => buffer.offer(1.5, 'x')).toThrow(RangeError);
    expect(() => new ReorderBuffer(-1)).toThrow(RangeError);
  });

  it('property: any completion order, with duplicates and redeliveries, yields exactly 1..n in order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.shuffledSubarray(
              Array.from({ length: n }, (_, i) => i + 1),
              { minLength: n, maxLength: n },
            ),
            fc.array(fc.integer({ min: 1, max: n }), { maxLength: n }),
            fc.infiniteStream(fc.nat()),
          ),
        ),
        ([n, order, extra, positions]) => {
          // Interleave duplicate arrivals (a recovered worker finishing late) at random places.
          const arrivals = [...order];
          for (const dup of extra) arrivals.splice(positions.next().value % (arrivals.length + 1), 0, dup);
          const buffer = new ReorderBuffer<string>();
          const released = drain(buffer, arrivals);
          expect(released).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect(buffer.size).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: the sequence of several destinations never interfere', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 1, max: 40 })), { maxLength: 300 }),
        (arrivals) => {
          const buffers = new Map<string, ReorderBuffer<string>>();
          const released = new Map<string, number[]>();
          for (const [dest, seq] of arrivals) {
            const buffer = buffers.get(dest) ?? new ReorderBuffer<string>();
            buffers.set(dest, buffer);
            released.set(dest, [...(released.get(dest) ?? []), ...drain(buffer, [seq])]);
          }
          for (const [dest, seqs] of released) {
            // Whatever was released is a contiguous prefix 1..k of that destination.
            expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
            expect(buffers.get(dest)!.delivered).toBe(seqs.length);
          }
        },
      ),
    );
  });
});
