/**
 * Runs the transform for one input entry until it settles: a value to deliver, nothing
 * (`null`), or a dead letter. A throw is retried with exponential backoff and full jitter; an
 * error with `permanent: true`, a result that is not JSON, or the last allowed attempt ends
 * in a dead letter with the reason. Each attempt has a timeout. With hedged dispatch, a slow
 * attempt is reported (`hedge.onSlow`) and a hedge copy runs one attempt ({@link runHedgeAttempt}).
 */
import type { ReseqConfig } from '@reseq/config';
import { backoffDelay, sleep, type Logger } from '@reseq/runtime';
import type { InputEntry, ResultKind } from '@reseq/store';
import { identityTransform, type TransformFn } from './load-transform.js';

/** How one entry settled. */
export interface Settled {
  kind: ResultKind;
  attempts: number;
  /** Payload JSON for "value", the last error for "dead", "" for "none". */
  body: string;
}

class AttemptTimeoutError extends Error {
  override readonly name = 'TransformTimeoutError';
}

/** The reason `context.signal` aborts with when another copy of the entry finished it first. */
class CancelledError extends Error {
  override readonly name = 'TransformCancelledError';
}

/**
 * `signal`'s abort calls every function added here, through one real listener per signal: an
 * EventTarget listener per attempt costs more than a fast transform does.
 */
const abortHooks = new WeakMap<AbortSignal, Set<() => void>>();

function onAbort(signal: AbortSignal, hook: () => void): () => void {
  let hooks = abortHooks.get(signal);
  if (!hooks) {
    const set = new Set<() => void>();
    hooks = set;
    abortHooks.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        for (const h of set) h();
        set.clear();
      },
      { once: true },
    );
  }
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/** A logger for one entry, made on first use: pino builds its redaction per child logger. */
function entryLogger(entry: InputEntry, logger: Logger): () => Logger {
  let child: Logger | undefined;
  return () => (child ??= logger.child({ id: entry.id, destination: entry.destination, sequence: entry.sequence }));
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${err.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${err.message}`;
  }
  return `thrown: ${String(err)}`;
}

function isPermanent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { permanent?: unknown }).permanent === true;
}

/** Options of {@link runTransform}. */
export interface RunTransformOptions {
  transform: TransformFn;
  settings: ReseqConfig['transform'];
  logger: Logger;
  /** Aborted when shutdown begins: no new attempt starts, the entry is handed back instead. */
  draining: AbortSignal;
  /** Aborted when the shutdown grace period ends: running attempts are told to stop. */
  abort: AbortSignal;
  /**
   * Aborted when another copy of the entry finished it (hedged dispatch): the running attempt is
   * told to stop and the run ends at once, unsettled and uncounted.
   */
  cancel?: AbortSignal;
  /** Hedged dispatch: `onSlow(attempt)` is called once an attempt has run for `afterMs`. */
  hedge?: { afterMs: number; onSlow: (attempt: number) => void };
  onAttempt?: (outcome: 'ok' | 'error' | 'timeout', seconds: number) => void;
}

/** How one attempt ended: settled, failed (`error`), or stopped by `cancel`. */
type AttemptEnd = { settled: Settled } | { error: unknown } | { cancelled: true };

/**
 * Runs one entry to its settlement, or returns undefined when shutdown interrupted it before
 * it settled (the entry stays pending and is handed back to the group), or when `cancel` ended it.
 */
export async function runTransform(entry: InputEntry, options: RunTransformOptions): Promise<Settled | undefined> {
  const { settings, draining } = options;
  // The identity transform delivers the payload as it came, without decoding it at all.
  if (options.transform === identityTransform) return { kind: 'value', attempts: 1, body: entry.payload };
  const log = entryLogger(entry, options.logger);
  const payload: unknown = JSON.parse(entry.payload);
  for (let attempt = 1; ; attempt++) {
    if (draining.aborted || options.cancel?.aborted) return undefined;
    const end = await runAttempt(entry, payload, attempt, options, log);
    if ('settled' in end) return end.settled;
    if ('cancelled' in end || draining.aborted) return undefined;
    const reason = describeError(end.error);
    if (isPermanent(end.error)) {
      log().warn({ attempt, reason }, 'transform failed permanently; dead-lettering');
      return { kind: 'dead', attempts: attempt, body: `TRANSFORM_PERMANENT: ${reason}` };
    }
    if (attempt >= settings.maxAttempts) {
      log().warn({ attempt, reason }, 'transform failed on its last attempt; dead-lettering');
      return { kind: 'dead', attempts: attempt, body: `TRANSFORM_ATTEMPTS_EXHAUSTED: ${reason}` };
    }
    const delay = backoffDelay(attempt, { baseMs: settings.retry.baseMs, maxMs: settings.retry.maxMs });
    log().info({ attempt, reason, retryInMs: delay }, 'transform failed; retrying');
    await sleep(delay, options.cancel ? AbortSignal.any([draining, options.cancel]) : draining);
  }
}

/**
 * Runs attempt `attempt` of an entry once, as the hedge copy of a peer's slow attempt: a value or
 * `null` settles it; anything else (a throw, a timeout, `undefined`, a value that is not JSON)
 * returns undefined and is left to the peer that holds the entry, which alone retries, backs off
 * and dead-letters. So a hedge never adds an attempt, skips a backoff or writes a dead letter.
 */
export async function runHedgeAttempt(
  entry: InputEntry,
  attempt: number,
  options: RunTransformOptions,
): Promise<Settled | undefined> {
  if (options.draining.aborted || options.cancel?.aborted) return undefined;
  if (options.transform === identityTransform) return { kind: 'value', attempts: attempt, body: entry.payload };
  const log = entryLogger(entry, options.logger);
  const end = await runAttempt(entry, JSON.parse(entry.payload), attempt, { ...options, hedge: undefined }, log);
  if ('settled' in end && end.settled.kind !== 'dead') return end.settled;
  if (!('cancelled' in end)) {
    const reason = 'error' in end ? describeError(end.error) : end.settled.body;
    log().info({ attempt, reason }, 'hedge copy failed; the worker that holds the entry retries or dead-letters it');
  }
  return undefined;
}

/**
 * One attempt, with its timeout, the hedge timer and `cancel`. Whichever ends it first (the
 * transform's answer, the timeout, `cancel`) settles one promise made by hand; the others find it
 * settled and do nothing. No race of promises per attempt: for a fast transform, the promises
 * and closures around the call cost more than the call.
 */
function runAttempt(
  entry: InputEntry,
  payload: unknown,
  attempt: number,
  options: RunTransformOptions,
  log: () => Logger,
): Promise<AttemptEnd> {
  const { settings } = options;
  return new Promise<AttemptEnd>((resolve) => {
    // The attempt's `context.signal`, made only when the transform asks for it (most never do);
    // an abort before that is remembered and applied to it then.
    let controller: AbortController | undefined;
    let abortedWith: { reason: unknown } | undefined;
    const abortAttempt = (reason: unknown): void => {
      abortedWith ??= { reason };
      controller?.abort(reason);
    };
    let ended = false;
    const started = performance.now();
    const end = (result: AttemptEnd, outcome?: 'ok' | 'error' | 'timeout'): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (slow) clearTimeout(slow);
      offAbort();
      offCancel?.();
      if (outcome) options.onAttempt?.(outcome, (performance.now() - started) / 1000);
      resolve(result);
    };
    const fail = (err: unknown): void => {
      if (options.cancel?.aborted) end({ cancelled: true });
      else end({ error: err }, err instanceof AttemptTimeoutError ? 'timeout' : 'error');
    };
    const offAbort = onAbort(options.abort, () => abortAttempt(options.abort.reason));
    const offCancel = options.cancel
      ? onAbort(options.cancel, () => {
          abortAttempt(new CancelledError('another copy finished this entry'));
          end({ cancelled: true });
        })
      : undefined;
    const timer = setTimeout(() => {
      const err = new AttemptTimeoutError(`transform took longer than ${settings.timeoutMs} ms`);
      abortAttempt(err);
      fail(err);
    }, settings.timeoutMs);
    const hedge = options.hedge;
    const slow = hedge ? setTimeout(() => hedge.onSlow(attempt), hedge.afterMs) : undefined;
    const message = { id: entry.id, destination: entry.destination, sequence: entry.sequence, payload, attempt };
    const context = {
      get signal(): AbortSignal {
        if (!controller) {
          controller = new AbortController();
          if (abortedWith) controller.abort(abortedWith.reason);
        }
        return controller.signal;
      },
      get log(): Logger {
        return log();
      },
    };
    const ok = (value: unknown): void => end({ settled: settle(value, attempt) }, 'ok');
    let returned: unknown;
    try {
      returned = options.transform(message, context);
    } catch (err) {
      fail(err);
      return;
    }
    // A thenable is awaited (its rejection is the attempt's error); anything else is the value.
    if (returned !== null && typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function') {
      Promise.resolve(returned).then(ok, fail);
    } else {
      ok(returned);
    }
  });
}

/** What a returned value settles as. */
function settle(value: unknown, attempt: number): Settled {
  if (value === null) return { kind: 'none', attempts: attempt, body: '' };
  if (value === undefined) {
    // Almost always a forgotten `return`: dropping would lose every message silently.
    return {
      kind: 'dead',
      attempts: attempt,
      body: 'TRANSFORM_RETURNED_UNDEFINED: return the payload to deliver, or null to deliver nothing',
    };
  }
  let body: string | undefined;
  try {
    body = JSON.stringify(value);
  } catch (err) {
    return { kind: 'dead', attempts: attempt, body: `TRANSFORM_RESULT_NOT_JSON: ${describeError(err)}` };
  }
  if (body === undefined) {
    return { kind: 'dead', attempts: attempt, body: `TRANSFORM_RESULT_NOT_JSON: ${typeof value} is not JSON` };
  }
  return { kind: 'value', attempts: attempt, body };
}
