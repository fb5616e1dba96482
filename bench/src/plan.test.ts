import { describe, expect, it } from 'vitest';
import { medianMs, payloadOf, planMessage, unitRandom } from './plan.js';

describe('the message plan', () => {
  it('gives message k the same destination and duration in every run (and every system)', () => {
    const model = { kind: 'uniform', minMs: 500, maxMs: 1000 } as const;
    const first = Array.from({ length: 100 }, (_, k) => planMessage(k, model, 50, 7));
    // Drawn in another order: the same plan.
    const again = Array.from({ length: 100 }, (_, i) => planMessage(99 - i, model, 50, 7)).reverse();
    expect(again).toEqual(first);
    expect(first.map((p) => p.destination).slice(0, 3)).toEqual([0, 1, 2]);
    expect(first[50]!.destination).toBe(0);
    expect(planMessage(3, model, 50, 8)).not.toEqual(first[3]);
  });

  it('keeps durations in their range, spread over it', () => {
    const model = { kind: 'uniform', minMs: 500, maxMs: 1000 } as const;
    const ms = Array.from({ length: 10_000 }, (_, k) => planMessage(k, model, 1, 1).ms);
    expect(Math.min(...ms)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...ms)).toBeLessThanOrEqual(1000);
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    expect(mean).toBeGreaterThan(740);
    expect(mean).toBeLessThan(760);
    expect(planMessage(5, { kind: 'fixed', ms: 750 }, 1, 1).ms).toBe(750);
    expect(planMessage(5, { kind: 'noop' }, 1, 1).ms).toBe(0);
  });

  it('makes about 1% of a heavy tail 10× slower on its first run only', () => {
    const model = { kind: 'tail', minMs: 200, maxMs: 300, share: 0.01, factor: 10 } as const;
    const plans = Array.from({ length: 20_000 }, (_, k) => planMessage(k, model, 20, 3));
    const slow = plans.filter((p) => p.retryMs !== undefined);
    expect(slow.length).toBeGreaterThan(150);
    expect(slow.length).toBeLessThan(250);
    for (const p of slow) expect(p.ms).toBe(p.retryMs! * 10);
    expect(payloadOf(slow[0]!)).toEqual({ k: slow[0]!.k, ms: slow[0]!.ms, retryMs: slow[0]!.retryMs });
    expect(payloadOf(plans.find((p) => p.retryMs === undefined)!)).not.toHaveProperty('retryMs');
    expect(medianMs(model)).toBe(250);
  });

  it('draws numbers in [0, 1)', () => {
    const draws = Array.from({ length: 1000 }, (_, k) => unitRandom(11, k, 0));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    expect(new Set(draws).size).toBe(1000);
  });
});
