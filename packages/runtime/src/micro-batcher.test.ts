import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './micro-batcher.js';

interface Request {
  id: string;
}
interface Outcome {
  sequences: Record<string, number>;
}
const request = (id: string): Request => ({ id });

describe('MicroBatcher', () => {
  it('writes the requests of one turn as one batch, in arrival order, and answers each', async () => {
    const batches: string[][] = [];
    let seq = 0;
    const batcher = new MicroBatcher<Request, Outcome>((requests) => {
      batches.push(requests.map((r) => r.id));
      return Promise.resolve(requests.map((): Outcome => ({ sequences: { d: ++seq } })));
    }, 100);
    const answers = await Promise.all(['a', 'b', 'c'].map((id) => batcher.submit(request(id))));
    expect(batches).toEqual([['a', 'b', 'c']]);
    expect(answers.map((a) => a.sequences.d)).toEqual([1, 2, 3]);
  });

  it('splits a large turn into batches of at most maxBatch, keeping order', async () => {
    const batches: string[][] = [];
    const batcher = new MicroBatcher<Request, Outcome>((requests) => {
      batches.push(requests.map((r) => r.id));
      return Promise.resolve(requests.map(() => ({ sequences: {} })));
    }, 2);
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => batcher.submit(request(id))));
    expect(batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('fails every request of a batch whose write failed, and only that batch', async () => {
    let call = 0;
    const batcher = new MicroBatcher<Request, Outcome>((requests) => {
      if (call++ === 0) return Promise.reject(new Error('redis down'));
      return Promise.resolve(requests.map(() => ({ sequences: {} })));
    }, 1);
    const results = await Promise.allSettled(['a', 'b'].map((id) => batcher.submit(request(id))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
  });

  it('drain waits for writes in flight', async () => {
    let written = 0;
    const batcher = new MicroBatcher<Request, Outcome>(async (requests) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      written += requests.length;
      return requests.map(() => ({ sequences: {} }));
    }, 10);
    void batcher.submit(request('a'));
    void batcher.submit(request('b'));
    await batcher.drain();
    expect(written).toBe(2);
  });

  describe('eager', () => {
    /** A batcher whose writes wait until `release()`; records the batches and when each went out. */
    function held() {
      const batches: string[][] = [];
      const pending: (() => void)[] = [];
      const batcher = new MicroBatcher<Request, string>(
        (requests) => {
          batches.push(requests.map((r) => r.id));
          return new Promise((resolve) => pending.push(() => resolve(requests.map((r) => r.id))));
        },
        undefined,
        { eager: true },
      );
      const release = (): void => pending.shift()?.();
      return { batcher, batches, release };
    }

    it('writes an item submitted while nothing is out before the turn ends', async () => {
      const { batcher, batches, release } = held();
      void batcher.submit(request('a'));
      await Promise.resolve();
      // Before any setImmediate could have run.
      expect(batches).toEqual([['a']]);
      release();
    });

    it('keeps one call out at a time: what comes meanwhile goes out together once it settles', async () => {
      const { batcher, batches, release } = held();
      const a = batcher.submit(request('a'));
      await Promise.resolve();
      const rest = ['b', 'c', 'd'].map((id) => batcher.submit(request(id)));
      await new Promise((resolve) => setImmediate(resolve));
      expect(batches).toEqual([['a']]);
      release();
      expect(await a).toBe('a');
      await new Promise((resolve) => setImmediate(resolve));
      expect(batches).toEqual([['a'], ['b', 'c', 'd']]);
      release();
      expect(await Promise.all(rest)).toEqual(['b', 'c', 'd']);
    });

    it('goes on after a failed call, and drain waits for the last one', async () => {
      let call = 0;
      const batcher = new MicroBatcher<Request, string>(
        (requests) =>
          call++ === 0 ? Promise.reject(new Error('redis down')) : Promise.resolve(requests.map((r) => r.id)),
        undefined,
        { eager: true },
      );
      const first = batcher.submit(request('a'));
      await Promise.resolve();
      const second = batcher.submit(request('b'));
      await expect(first).rejects.toThrow('redis down');
      await batcher.drain();
      expect(await second).toBe('b');
    });
  });
});
