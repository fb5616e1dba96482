/**
 * `@reseq/webhook-verify`: for receivers of reseq's signed HTTP deliveries (Standard Webhooks).
 * `verifyWebhook` checks a request's signature and timestamp; `ReplayGuard` de-duplicates by
 * `webhook-id`. Zero dependencies beyond node:crypto. reseq signs with the same `signWebhook`.
 */
export {
  verifyWebhook,
  DEFAULT_TOLERANCE_SECONDS,
  type VerifyWebhookOptions,
  type VerifiedWebhook,
  type WebhookHeaders,
} from './verify.js';
export {
  signWebhook,
  webhookKey,
  isWebhookSecret,
  SECRET_PREFIX,
  MIN_SECRET_BYTES,
  type SignedContent,
} from './sign.js';
export { ReplayGuard, type ReplayGuardOptions } from './replay-guard.js';
export { WebhookVerificationError, WEBHOOK_ERROR_CODES, type WebhookErrorCode } from './errors.js';
