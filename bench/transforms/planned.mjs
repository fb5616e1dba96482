// The benchmark's transform (TRANSFORM_MODULE of reseq's workers; the baselines import the same
// file): it waits the time planned in the payload (`ms`; 0 returns at once, without a timer)
// and returns the payload unchanged. See bench/src/plan.ts.
//
// Heavy tail: a payload with `retryMs` is slow on its first run only. Which run is the first is
// decided across processes by creating a marker file `<BENCH_MARK_DIR>/<k>` (O_EXCL): the run
// that creates it takes `ms`, every later run of the same message (a hedge on another worker)
// takes `retryMs`. The slowness belongs to the run (a stuck call, a slow host), which is what
// hedged dispatch is for; without BENCH_MARK_DIR every run takes `ms`.
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';

const markDir = process.env.BENCH_MARK_DIR;

function isFirstRun(k) {
  if (!markDir) return true;
  try {
    closeSync(openSync(join(markDir, String(k)), 'wx'));
    return true;
  } catch (err) {
    if (err && err.code === 'EEXIST') return false;
    throw err;
  }
}

function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

export default async function transform(message, context) {
  const payload = message.payload;
  if (payload === null || typeof payload !== 'object' || typeof payload.ms !== 'number') {
    throw Object.assign(new Error('bench transform: the payload has no planned duration `ms`'), { permanent: true });
  }
  let ms = payload.ms;
  if (typeof payload.retryMs === 'number' && !isFirstRun(payload.k)) ms = payload.retryMs;
  if (ms > 0) await wait(ms, context?.signal);
  return payload;
}
