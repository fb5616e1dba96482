/**
 * The receiver's check of a signed delivery: all three headers present, the timestamp within
 * the tolerance (so a captured request cannot be replayed later), and one of the `v1,`
 * signatures matching, compared in constant time.
 */
import { timingSafeEqual } from 'node:crypto';
import { WebhookVerificationError } from './errors.js';
import { signWebhook, webhookKey } from './sign.js';

/** Request headers as Node's `IncomingMessage.headers`, a fetch `Headers`, or a plain object. */
export type WebhookHeaders =
  { get(name: string): string | null } | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /**
   * The destination's `whsec_<base64>` secret. During a rotation, pass the old and the new one:
   * a request verifies when any of them signed it.
   */
  secret: string | readonly string[];
  headers: WebhookHeaders;
  /** The raw request body, byte for byte as received (not re-serialised JSON). */
  body: string | Uint8Array;
  /** How far `webhook-timestamp` may be from now, either way, in seconds; default 300. */
  toleranceSeconds?: number;
  /** The current time in ms since the epoch (tests); default `Date.now()`. */
  now?: number;
}

/** A verified delivery. */
export interface VerifiedWebhook {
  /** `webhook-id`: the same on every redelivery of one message, so de-duplicate by it. */
  id: string;
  /** `webhook-timestamp`, Unix seconds. */
  timestamp: number;
}

/** Default of {@link VerifyWebhookOptions.toleranceSeconds}, as the Standard Webhooks spec advises. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof headers.get === 'function')
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  const value = record[name] ?? Object.entries(record).find(([key]) => key.toLowerCase() === name)?.[1];
  return typeof value === 'string' ? value : value?.join(' ');
}

/**
 * Verifies one delivery the Standard Webhooks way.
 * @returns the verified `webhook-id` and timestamp.
 * @throws {WebhookVerificationError} with `code` `WEBHOOK_HEADERS_MISSING`,
 *   `WEBHOOK_TIMESTAMP_INVALID`, `WEBHOOK_TIMESTAMP_TOO_OLD`, `WEBHOOK_TIMESTAMP_TOO_NEW`,
 *   `WEBHOOK_SIGNATURE_INVALID`, or `WEBHOOK_SECRET_INVALID` for a malformed secret.
 */
export function verifyWebhook(options: VerifyWebhookOptions): VerifiedWebhook {
  const keys = (typeof options.secret === 'string' ? [options.secret] : options.secret).map(webhookKey);
  if (keys.length === 0) throw new WebhookVerificationError('WEBHOOK_SECRET_INVALID', 'no webhook secret given');
  const id = header(options.headers, 'webhook-id');
  const timestampText = header(options.headers, 'webhook-timestamp');
  const signatures = header(options.headers, 'webhook-signature');
  if (!id || !timestampText || !signatures) {
    throw new WebhookVerificationError(
      'WEBHOOK_HEADERS_MISSING',
      'webhook-id, webhook-timestamp and webhook-signature are all required',
    );
  }

  if (!/^\d{1,15}$/.test(timestampText)) {
    throw new WebhookVerificationError('WEBHOOK_TIMESTAMP_INVALID', 'webhook-timestamp is not Unix seconds');
  }
  const timestamp = Number(timestampText);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (timestamp < now - tolerance) {
    throw new WebhookVerificationError('WEBHOOK_TIMESTAMP_TOO_OLD', `webhook-timestamp is over ${tolerance} s old`);
  }
  if (timestamp > now + tolerance) {
    throw new WebhookVerificationError(
      'WEBHOOK_TIMESTAMP_TOO_NEW',
      `webhook-timestamp is over ${tolerance} s in the future`,
    );
  }

  // Several space-separated signatures are allowed (a sender mid-rotation signs with both keys);
  // versions other than v1 are ignored.
  const offered = signatures
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  for (const key of keys) {
    const expected = Buffer.from(signWebhook(key, { id, timestamp, body: options.body }).slice(3), 'base64');
    // timingSafeEqual needs equal lengths; a length mismatch reveals nothing about the key.
    if (offered.some((candidate) => candidate.length === expected.length && timingSafeEqual(candidate, expected))) {
      return { id, timestamp };
    }
  }
  throw new WebhookVerificationError('WEBHOOK_SIGNATURE_INVALID', 'no webhook-signature matches');
}
