import { createLogger } from '@reseq/runtime';
import type { InputEntry } from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { identityTransform, type TransformFn } from './load-transform.js';
import { runTransform } from './run-transform.js';

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
