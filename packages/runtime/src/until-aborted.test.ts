import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { untilAborted } from './until-aborted.js';

describe('untilAborted', () => {
  it("resolves with the work's value, or rejects with its error", async () => {
    const signal = new AbortController().signal;
    await expect(untilAborted(Promise.resolve(42), signal)).resolves.toBe(42);
    await expect(untilAborted(Promise.reject(new Error('read failed')), signal)).rejects.toThrow('read failed');
  });

  it('resolves with undefined when the signal aborts first, and when it had aborted already', async () => {
    const stopping = new AbortController();
    const never = new Promise<number>(() => undefined);
    const waiting = untilAborted(never, stopping.signal);
    stopping.abort();
    await expect(waiting).resolves.toBeUndefined();
    await expect(untilAborted(Promise.reject(new Error('late failure')), stopping.signal)).resolves.toBeUndefined();
  });

  it('keeps nothing on a long-lived signal once the work has settled: a loop does not leak', async () => {
    const stopping = new AbortController();
    for (let i = 0; i < 1000; i++) {
      await untilAborted(Promise.resolve({ batch: i }), stopping.signal);
      await untilAborted(Promise.reject(new Error('retry')), stopping.signal).catch(() => undefined);
    }
    expect(getEventListeners(stopping.signal, 'abort')).toHaveLength(0);
  });
});
