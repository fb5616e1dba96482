/**
 * HTTP delivery: `POST <url>` with the payload as JSON and the contract's headers
 * (`Idempotency-Key`, `Reseq-Sequence`, `Reseq-Message-Id`), signed the Standard Webhooks way
 * where the destination has a `secret`. A 2xx counts as delivered. With `batch.maxMessages` above
 * 1, every request carries a JSON array of messages instead (http-batch.ts), one or several.
 * Connections are kept alive in an undici pool per destination.
 */
import type { HttpDestinationConfig } from '@reseq/config';
import { signWebhook, webhookKey } from '@reseq/webhook-verify';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { idempotencyKey, type Delivery, type DeliveryOutcome, type DeliveryRequest } from './delivery.js';
import { batchIdempotencyKey, encodeBatchBody } from './http-batch.js';

/** Statuses below 500 that still mean "try again later". */
const RETRYABLE_4XX = new Set([408, 409, 425, 429]);

function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The attempt ended before the request was written, because `mayWrite` said no. */
class NotWrittenError extends Error {
  override readonly name = 'NotWrittenError';
}

/**
 * An undici interceptor that asks `mayWrite` when the request is about to be written to its
 * socket (undici calls `onRequestStart` right before writing, after any connect) and aborts it
 * unwritten when the answer is no.
 */
function checkBeforeWrite(mayWrite: () => boolean): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) =>
    dispatch(options, {
      onRequestStart(controller, context) {
        handler.onRequestStart?.(controller, context);
        if (!controller.aborted && !mayWrite()) controller.abort(new NotWrittenError('not sent: mayWrite said no'));
      },
      onRequestUpgrade: (controller, statusCode, headers, socket) =>
        handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) =>
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage),
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    });
}

/** Delivers to one HTTP destination. */
export class HttpDelivery implements Delivery {
  /** `batch.maxMessages`; 1 (the default): one message per request, as the contract has it. */
  readonly maxBatch: number;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #config: HttpDestinationConfig;
  /** The HMAC key of the destination's `secret`, where it has one. */
  readonly #signingKey: Buffer | undefined;

  constructor(config: HttpDestinationConfig) {
    const url = new URL(config.url);
    this.#config = config;
    this.maxBatch = config.batch?.maxMessages ?? 1;
    this.#signingKey = config.secret === undefined ? undefined : webhookKey(config.secret);
    this.#path = `${url.pathname}${url.search}`;
    this.#pool = new Pool(url.origin, {
      connections: 4,
      pipelining: 1,
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs,
      connectTimeout: Math.min(config.timeoutMs, 10_000),
    });
  }

  async send(request: DeliveryRequest, signal?: AbortSignal, mayWrite?: () => boolean): Promise<DeliveryOutcome> {
    // A batch destination always gets arrays, of one message where one is all there is to send.
    if (this.maxBatch > 1) return this.sendBatch([request], signal, mayWrite);
    const headers = {
      'reseq-sequence': String(request.sequence),
      'reseq-message-id': request.messageId,
    };
    return this.#post(idempotencyKey(request), headers, request.payload, signal, mayWrite);
  }

  /**
   * Sends consecutive messages, in sequence order, as one JSON array: `Reseq-Sequence` is the
   * first one's sequence, `Reseq-Sequence-Last` the last one's, and `Idempotency-Key` names the
   * destination and that range.
   */
  async sendBatch(
    requests: readonly DeliveryRequest[],
    signal?: AbortSignal,
    mayWrite?: () => boolean,
  ): Promise<DeliveryOutcome> {
    const body = encodeBatchBody(requests);
    const first = requests[0]!;
    const last = requests.at(-1)!;
    const headers = {
      'reseq-sequence': String(first.sequence),
      'reseq-sequence-last': String(last.sequence),
    };
    return this.#post(
      batchIdempotencyKey(first.destination, first.sequence, last.sequence),
      headers,
      body,
      signal,
      mayWrite,
    );
  }

  /** One `POST` of `payload` (JSON text) with the key, reseq's `headers` and the signature. */
  async #post(
    id: string,
    headers: Record<string, string>,
    payload: string,
    signal: AbortSignal | undefined,
    mayWrite: (() => boolean) | undefined,
  ): Promise<DeliveryOutcome> {
    try {
      const dispatcher = mayWrite ? this.#pool.compose(checkBeforeWrite(mayWrite)) : this.#pool;
      // Signed: the very bytes that were signed go on the wire.
      const body = this.#signingKey ? Buffer.from(payload, 'utf8') : payload;
      const response = await dispatcher.request({
        method: 'POST',
        path: this.#path,
        headers: {
          ...this.#config.headers,
          'content-type': 'application/json',
          'idempotency-key': id,
          ...headers,
          ...this.#signatureHeaders(id, body),
        },
        body,
        signal,
      });
      // Drain the body so the connection goes back to the pool.
      await response.body.dump();
      const status = response.statusCode;
      if (status >= 200 && status < 300) return { ok: true, status };
      const retryable = status >= 500 || RETRYABLE_4XX.has(status);
      return {
        ok: false,
        retryable,
        status,
        error: `HTTP ${status}`,
        retryAfterMs: parseRetryAfter(response.headers['retry-after']),
      };
    } catch (err) {
      if (err instanceof NotWrittenError) return { ok: false, retryable: true, error: err.message };
      const aborted = err instanceof undiciErrors.RequestAbortedError || signal?.aborted === true;
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      return { ok: false, retryable: true, error: aborted ? 'aborted' : message };
    }
  }

  /** The Standard Webhooks headers of one attempt (a fresh timestamp each), or none without a secret. */
  #signatureHeaders(id: string, body: string | Buffer): Record<string, string> {
    if (!this.#signingKey) return {};
    const timestamp = Math.floor(Date.now() / 1000);
    return {
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(this.#signingKey, { id, timestamp, body }),
    };
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
