/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): the delay before retry n is uniform in [0, min(cap, base * 2^(n-1))]. Full jitter
 * spreads the retries of many workers that failed together instead of synchronising them.
 */

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Delay scale of the first retry in ms. */
  baseMs: number;
  /** Upper bound of any delay in ms. */
  maxMs: number;
  /** Source of randomness in [0, 1); default Math.random. Tests pass a fixed one. */
  random?: () => number;
}

/** Delay in ms before retry number `retry` (1 for the first retry). */
export function backoffDelay(retry: number, options: BackoffOptions): number {
  const exp = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, retry - 1));
  const random = options.random ?? Math.random;
  return Math.floor(random() * exp);
}

/** Resolves after `ms`, or at once (rejecting nothing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
