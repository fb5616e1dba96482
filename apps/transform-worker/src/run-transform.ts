/**
 * Runs the transform for one input entry until it settles: a value to deliver, nothing
 * (`null`), or a dead letter. A throw is retried with exponential backoff and full jitter; an
 * error with `permanent: true`, a result that is not JSON, or the last allowed attempt ends
 * in a dead letter with the reason. Each attempt has a timeout.
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
  onAttempt?: (outcome: 'ok' | 'error' | 'timeout', seconds: number) => void;
}

/**
 * Runs one entry to its settlement, or returns undefined when shutdown interrupted it before
 * it settled (the entry stays pending and is handed back to the group).
 */
export async function runTransform(entry: InputEntry, options: RunTransformOptions): Promise<Settled | undefined> {
  const { settings, draining } = options;
  // The identity transform delivers the payload as it came, without decoding it at all.
  if (options.transform === identityTransform) return { kind: 'value', attempts: 1, body: entry.payload };
  // A child logger costs more than a fast transform (pino redaction runs per child): make it
  // only when the transform or a failure actually logs.
  let child: Logger | undefined;
  const logger = (): Logger =>
    (child ??= options.logger.child({ id: entry.id, destination: entry.destination, sequence: entry.sequence }));
  const payload: unknown = JSON.parse(entry.payload);
  for (let attempt = 1; ; attempt++) {
    if (draining.aborted) return undefined;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(options.abort.reason);
    options.abort.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const started = performance.now();
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new AttemptTimeoutError(`transform took longer than ${settings.timeoutMs} ms`);
          controller.abort(err);
          reject(err);
        }, settings.timeoutMs);
      });
      const message = { id: entry.id, destination: entry.destination, sequence: entry.sequence, payload, attempt };
      const value = await Promise.race([
        Promise.resolve().then(() =>
          options.transform(message, {
            signal: controller.signal,
            get log() {
              return logger();
            },
          }),
        ),
        timeout,
      ]);
      options.onAttempt?.('ok', (performance.now() - started) / 1000);
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
    } catch (err) {
      options.onAttempt?.(
        err instanceof AttemptTimeoutError ? 'timeout' : 'error',
        (performance.now() - started) / 1000,
      );
      if (draining.aborted) return undefined;
      const reason = describeError(err);
      if (isPermanent(err)) {
        logger().warn({ attempt, reason }, 'transform failed permanently; dead-lettering');
        return { kind: 'dead', attempts: attempt, body: `TRANSFORM_PERMANENT: ${reason}` };
      }
      if (attempt >= settings.maxAttempts) {
        logger().warn({ attempt, reason }, 'transform failed on its last attempt; dead-lettering');
        return { kind: 'dead', attempts: attempt, body: `TRANSFORM_ATTEMPTS_EXHAUSTED: ${reason}` };
      }
      const delay = backoffDelay(attempt, { baseMs: settings.retry.baseMs, maxMs: settings.retry.maxMs });
      logger().info({ attempt, reason, retryInMs: delay }, 'transform failed; retrying');
      await sleep(delay, draining);
    } finally {
      clearTimeout(timer);
      options.abort.removeEventListener('abort', onAbort);
    }
  }
}
