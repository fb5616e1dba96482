import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, sleep } from './backoff.js';

describe('backoffDelay (exponential, full jitter)', () => {
  it('doubles the ceiling with each retry up to the cap', () => {
    const top = (retry: number) => backoffDelay(retry, { baseMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5].map(top)).toEqual([99, 199, 399, 799, 999]);
  });

  it('can be anywhere from 0 to the ceiling (full jitter)', () => {
    expect(backoffDelay(3, { baseMs: 100, maxMs: 1000, random: () => 0 })).toBe(0);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (retry, r) => {
        const delay = backoffDelay(retry, { baseMs: 50, maxMs: 30_000, random: () => r });
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(Math.min(30_000, 50 * 2 ** (retry - 1)));
      }),
    );
  });

  it('sleep ends early when its signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const slept = sleep(10_000, controller.signal);
    controller.abort();
    await slept;
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
