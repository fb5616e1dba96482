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
});
