import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

type Transform = (message: { id: string; payload: unknown }, context?: { signal?: AbortSignal }) => Promise<unknown>;

let dir: string;
let transform: Transform;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bench-marks-'));
  // The module reads BENCH_MARK_DIR once, when it is loaded.
  vi.stubEnv('BENCH_MARK_DIR', dir);
  // A plain ES module without types (it is what reseq's workers load): imported by URL.
  const url = new URL('./planned.mjs', import.meta.url).href;
  transform = ((await import(url)) as { default: Transform }).default;
});

afterAll(async () => {
  vi.unstubAllEnvs();
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

/** Whether the promise has settled after the timers advanced by `ms`. */
async function settledAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  await vi.advanceTimersByTimeAsync(ms);
  return settled;
}

describe('the bench transform', () => {
  it('returns the payload unchanged, at once for a no-op', async () => {
    const payload = { k: 1, ms: 0 };
    await expect(transform({ id: 'a', payload })).resolves.toBe(payload);
  });

  it('takes the planned time', async () => {
    vi.useFakeTimers();
    const run = transform({ id: 'b', payload: { k: 2, ms: 750 } });
    expect(await settledAfter(run, 749)).toBe(false);
    expect(await settledAfter(run, 1)).toBe(true);
    vi.useRealTimers();
  });

  it('is slow on the first run of a heavy-tail message only (a hedge runs at the ordinary pace)', async () => {
    vi.useFakeTimers();
    const payload = { k: 3, ms: 2500, retryMs: 250 };
    const first = transform({ id: 'c', payload });
    expect(existsSync(join(dir, '3'))).toBe(true);
    const second = transform({ id: 'c', payload });
    expect(await settledAfter(second, 250)).toBe(true);
    expect(await settledAfter(first, 0)).toBe(false);
    expect(await settledAfter(first, 2250)).toBe(true);
    vi.useRealTimers();
  });

  it('refuses a payload without a planned duration, permanently', async () => {
    await expect(transform({ id: 'd', payload: { k: 4 } })).rejects.toMatchObject({ permanent: true });
    await expect(transform({ id: 'e', payload: 'text' })).rejects.toThrow(/planned duration/);
  });

  it('stops waiting when its signal aborts', async () => {
    const controller = new AbortController();
    const run = transform({ id: 'f', payload: { k: 5, ms: 60_000 } }, { signal: controller.signal });
    controller.abort(new Error('timed out'));
    await expect(run).rejects.toThrow('timed out');
  });
});
