import { createLogger } from '@reseq/runtime';
import type { InputEntry } from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { identityTransform, type TransformFn } from './load-transform.js';
import { runHedgeAttempt, runTransform, type RunTransformOptions } from './run-transform.js';

const entry: InputEntry = {
  entryId: '1-0',
  id: 'msg-1',
  destination: 'billing',
  sequence: 3,
  acceptedAt: 1,
  payload: '{"amount":5}',
};
const settings = { maxAttempts: 3, retry: { baseMs: 1, maxMs: 2 }, timeoutMs: 200 };
const logger = createLogger({ app: 'test', level: 'silent' });

function run(transform: TransformFn, draining = new AbortController()) {
  return runTransform(entry, {
    transform,
    settings,
    logger,
    draining: draining.signal,
    abort: new AbortController().signal,
  });
}

describe('runTransform', () => {
  it('passes the contract message and delivers the returned payload as JSON', async () => {
    const seen: unknown[] = [];
    const settled = await run((message) => {
      seen.push(message);
      return { charged: (message.payload as { amount: number }).amount * 2 };
    });
    expect(seen).toEqual([{ id: 'msg-1', destination: 'billing', sequence: 3, payload: { amount: 5 }, attempt: 1 }]);
    expect(settled).toEqual({ kind: 'value', attempts: 1, body: '{"charged":10}' });
  });

  it('null delivers nothing', async () => {
    expect(await run(() => null)).toEqual({ kind: 'none', attempts: 1, body: '' });
  });

  it('undefined (a forgotten return) dead-letters instead of dropping silently', async () => {
    const settled = await run(() => undefined);
    expect(settled).toMatchObject({ kind: 'dead', attempts: 1 });
    expect(settled?.body).toMatch(/^TRANSFORM_RETURNED_UNDEFINED/);
  });

  it('the identity transform delivers the payload as it came, null included', async () => {
    expect(await run(identityTransform)).toEqual({ kind: 'value', attempts: 1, body: '{"amount":5}' });
    const settled = await runTransform(
      { ...entry, payload: 'null' },
      {
        transform: identityTransform,
        settings,
        logger,
        draining: new AbortController().signal,
        abort: new AbortController().signal,
      },
    );
    expect(settled).toEqual({ kind: 'value', attempts: 1, body: 'null' });
  });

  it('retries a throwing transform with increasing attempt numbers until it succeeds', async () => {
    const attempts: number[] = [];
    const settled = await run((message) => {
      attempts.push(message.attempt);
      if (message.attempt < 3) return Promise.reject(new Error('flaky'));
      return Promise.resolve('ok');
    });
    expect(attempts).toEqual([1, 2, 3]);
    expect(settled).toEqual({ kind: 'value', attempts: 3, body: '"ok"' });
  });

  it('dead-letters after maxAttempts with the last error', async () => {
    const settled = await run(() => {
      throw new TypeError('still broken');
    });
    expect(settled?.kind).toBe('dead');
    expect(settled?.attempts).toBe(3);
    expect(settled?.body).toMatch(/^TRANSFORM_ATTEMPTS_EXHAUSTED: TypeError: still broken/);
  });

  it('dead-letters at once on a permanent error', async () => {
    let calls = 0;
    const settled = await run(() => {
      calls++;
      throw Object.assign(new Error('bad data'), { permanent: true });
    });
    expect(calls).toBe(1);
    expect(settled).toMatchObject({ kind: 'dead', attempts: 1 });
    expect(settled?.body).toMatch(/^TRANSFORM_PERMANENT: Error: bad data/);
  });

  it('counts a timeout as a failed attempt and aborts the transform signal', async () => {
    const aborted: boolean[] = [];
    const settled = await run(
      (_message, { signal }) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            aborted.push(true);
            resolve('too late');
          });
        }),
    );
    expect(settled).toMatchObject({ kind: 'dead', attempts: 3 });
    expect(settled?.body).toMatch(/TransformTimeoutError/);
    expect(aborted).toHaveLength(3);
  });

  it('dead-letters a result that is not JSON', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect((await run(() => circular))?.body).toMatch(/^TRANSFORM_RESULT_NOT_JSON/);
    expect((await run(() => () => 1))?.body).toMatch(/^TRANSFORM_RESULT_NOT_JSON/);
  });

  it('hands the entry back (undefined) instead of retrying once draining began', async () => {
    const draining = new AbortController();
    const settled = await run(() => {
      draining.abort();
      throw new Error('fails while shutting down');
    }, draining);
    expect(settled).toBeUndefined();
  });
});

describe('hedged dispatch in runTransform', () => {
  const base = (): RunTransformOptions => ({
    transform: () => 'ok',
    settings,
    logger,
    draining: new AbortController().signal,
    abort: new AbortController().signal,
  });
  const never = (_m: unknown, { signal }: { signal: AbortSignal }) =>
    new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped'))));

  it('reports an attempt that runs past hedge.afterMs, with its attempt number, and not a quick one', async () => {
    const slow: number[] = [];
    const settled = await runTransform(entry, {
      ...base(),
      hedge: { afterMs: 30, onSlow: (attempt) => slow.push(attempt) },
      transform: async (message) => {
        // Attempt 1 fails at once; attempt 2 runs long, then succeeds.
        if (message.attempt === 1) throw new Error('flaky');
        await new Promise((resolve) => setTimeout(resolve, 80));
        return 'late';
      },
    });
    expect(settled).toEqual({ kind: 'value', attempts: 2, body: '"late"' });
    expect(slow).toEqual([2]);
  });

  it('stops at once, unsettled and uncounted, when another copy finished the entry', async () => {
    const cancel = new AbortController();
    const outcomes: string[] = [];
    const signals: AbortSignal[] = [];
    const running = runTransform(entry, {
      ...base(),
      cancel: cancel.signal,
      onAttempt: (outcome) => outcomes.push(outcome),
      transform: (message, context) => {
        signals.push(context.signal);
        return never(message, context);
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    cancel.abort();
    expect(await running).toBeUndefined();
    expect(signals[0]?.aborted).toBe(true);
    expect(outcomes).toEqual([]);
  });

  it('a hedge copy runs the given attempt once and settles a value', async () => {
    const seen: number[] = [];
    const settled = await runHedgeAttempt(entry, 3, {
      ...base(),
      transform: (message) => {
        seen.push(message.attempt);
        return { hedged: true };
      },
    });
    expect(seen).toEqual([3]);
    expect(settled).toEqual({ kind: 'value', attempts: 3, body: '{"hedged":true}' });
    expect(await runHedgeAttempt(entry, 1, { ...base(), transform: () => null })).toEqual({
      kind: 'none',
      attempts: 1,
      body: '',
    });
  });

  it('a failing hedge copy settles nothing: no retry, no dead letter (the holder decides)', async () => {
    for (const transform of [
      () => {
        throw new Error('flaky');
      },
      () => {
        throw Object.assign(new Error('poison'), { permanent: true });
      },
      () => undefined,
    ]) {
      let calls = 0;
      const settled = await runHedgeAttempt(entry, 1, {
        ...base(),
        transform: () => {
          calls++;
          return transform();
        },
      });
      expect(settled).toBeUndefined();
      expect(calls).toBe(1);
    }
  });
});
