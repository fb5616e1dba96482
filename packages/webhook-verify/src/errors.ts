/**
 * The one error class of the webhook helpers, with a stable `code` a receiver can switch on
 * (and answer, log or count by).
 */

/** Every way a webhook can fail verification. */
export const WEBHOOK_ERROR_CODES = [
  /** `webhook-id`, `webhook-timestamp` or `webhook-signature` is absent or empty. */
  'WEBHOOK_HEADERS_MISSING',
  /** The secret is not `whsec_` + base64 of at least 16 bytes (a receiver's setup error). */
  'WEBHOOK_SECRET_INVALID',
  /** `webhook-timestamp` is not a whole number of Unix seconds. */
  'WEBHOOK_TIMESTAMP_INVALID',
  /** `webhook-timestamp` is further in the past than the tolerance: stale or replayed. */
  'WEBHOOK_TIMESTAMP_TOO_OLD',
  /** `webhook-timestamp` is further in the future than the tolerance. */
  'WEBHOOK_TIMESTAMP_TOO_NEW',
  /** No `v1,` signature in `webhook-signature` matches: forged, altered, or the wrong secret. */
  'WEBHOOK_SIGNATURE_INVALID',
  /** A {@link ReplayGuard} has already accepted this `webhook-id`. */
  'WEBHOOK_REPLAYED',
] as const;

/** One of {@link WEBHOOK_ERROR_CODES}. */
export type WebhookErrorCode = (typeof WEBHOOK_ERROR_CODES)[number];

/** A webhook that did not verify; `code` says why. A receiver answers it with a 4xx. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  readonly code: WebhookErrorCode;

  constructor(code: WebhookErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
