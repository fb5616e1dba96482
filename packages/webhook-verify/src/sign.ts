/**
 * The Standard Webhooks signature: HMAC-SHA256, keyed with the base64-decoded part of the
 * secret after `whsec_`, over `<webhook-id>.<webhook-timestamp>.<body>`, sent as `v1,<base64>`.
 * The sender (reseq's HTTP delivery) and the verifier share this one implementation.
 */
import { createHmac } from 'node:crypto';
import { WebhookVerificationError } from './errors.js';

/** The prefix of a Standard Webhooks secret. */
export const SECRET_PREFIX = 'whsec_';

/** The fewest key bytes a secret may carry (128 bits). */
export const MIN_SECRET_BYTES = 16;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * Whether `secret` is `whsec_` followed by valid base64 (padding optional) of at least
 * {@link MIN_SECRET_BYTES} bytes.
 */
export function isWebhookSecret(secret: string): boolean {
  if (!secret.startsWith(SECRET_PREFIX)) return false;
  const encoded = secret.slice(SECRET_PREFIX.length);
  return BASE64.test(encoded) && Buffer.from(encoded, 'base64').length >= MIN_SECRET_BYTES;
}

/**
 * The HMAC key of a `whsec_<base64>` secret.
 * @throws {WebhookVerificationError} `WEBHOOK_SECRET_INVALID` (the message never contains the secret).
 */
export function webhookKey(secret: string): Buffer {
  if (!isWebhookSecret(secret)) {
    throw new WebhookVerificationError(
      'WEBHOOK_SECRET_INVALID',
      `a webhook secret is "${SECRET_PREFIX}" followed by base64 of at least ${MIN_SECRET_BYTES} bytes`,
    );
  }
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

/** What one signature covers. */
export interface SignedContent {
  /** `webhook-id` (reseq: the `Idempotency-Key`). */
  id: string;
  /** `webhook-timestamp`: Unix seconds. */
  timestamp: number;
  /** The request body exactly as sent: bytes, or a string taken as UTF-8. */
  body: string | Uint8Array;
}

/**
 * The `webhook-signature` value (`v1,<base64 HMAC-SHA256>`) of one request.
 * @param key a key from {@link webhookKey}, or the `whsec_` secret itself.
 * @throws {WebhookVerificationError} `WEBHOOK_SECRET_INVALID` for a malformed secret.
 */
export function signWebhook(key: Uint8Array | string, content: SignedContent): string {
  const hmac = createHmac('sha256', typeof key === 'string' ? webhookKey(key) : key);
  hmac.update(`${content.id}.${content.timestamp}.`, 'utf8');
  hmac.update(content.body);
  return `v1,${hmac.digest('base64')}`;
}
