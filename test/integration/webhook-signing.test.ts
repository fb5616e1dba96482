/**
 * Signed HTTP delivery through the real apps: a receiver that verifies every request with
 * @reseq/webhook-verify (as docs/security.md shows) takes every delivery of a destination with a
 * `secret`, including redeliveries, and rejects forged, altered and stale (replayed) requests;
 * a destination without a secret gets no webhook-* headers.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  ReplayGuard,
  signWebhook,
  verifyWebhook,
  WebhookVerificationError,
  type WebhookErrorCode,
} from '@reseq/webhook-verify';
import { waitFor } from '../fixtures/apps.js';
import type { Delivery, HttpSink } from '../fixtures/http-sink.js';
import { expectDelivered, Harness, pipelineConfig, post, range } from './helpers.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const WRONG_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

/** What a verifying receiver saw. */
interface Receiver {
  /** Every request that reached it, verified or not. */
  attempts: Delivery[];
  /** Codes of the requests it refused. */
  rejected: WebhookErrorCode[];
  /** Ids answered 2xx without processing (already seen). */
  duplicates: string[];
}

/**
 * Makes `sink` a careful receiver: verify (401 on failure), de-duplicate by webhook-id, and
 * answer 503 to the first attempt of the sequences in `failFirst` (to see redeliveries).
 */
function verifyingReceiver(sink: HttpSink, failFirst: ReadonlySet<number> = new Set()): Receiver {
  const receiver: Receiver = { attempts: [], rejected: [], duplicates: [] };
  const guard = new ReplayGuard();
  const failed = new Set<number>();
  sink.respond = (delivery) => {
    receiver.attempts.push(delivery);
    try {
      const webhook = verifyWebhook({ secret: SECRET, headers: delivery.headers, body: delivery.rawBody });
      if (failFirst.has(delivery.sequence) && !failed.has(delivery.sequence)) {
        failed.add(delivery.sequence);
        return 503; // before processing: the id is not remembered
      }
      if (!guard.firstSeen(webhook)) receiver.duplicates.push(webhook.id);
      return 200;
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      receiver.rejected.push(err.code);
      return 401;
    }
  };
  return receiver;
}

const WEBHOOK_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'];

describe('signed HTTP delivery (Standard Webhooks)', () => {
  let h: Harness | undefined;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && h) console.log(h.dumpLogs());
    await h?.cleanup();
    h = undefined;
  });

  it('signs every attempt so a receiver verifies it; forged and stale requests are refused; unsigned destinations get no webhook headers', async () => {
    h = new Harness('webhook-signing', inject('redisUrl'));
    const signedSink = await h.sink();
    const plainSink = await h.sink();
    const receiver = verifyingReceiver(signedSink, new Set([2, 4]));
    const config = pipelineConfig({ signed: { url: signedSink.url }, plain: { url: plainSink.url } });
    (config.destinations as Record<string, Record<string, unknown>>).signed!.secret = SECRET;
    const path = await h.config(config);
    const ingest = await h.start('ingest', path);
    await h.start('transform-worker', path);
    await h.start('resequencer-sender', path);

    const count = 6;
    for (let i = 0; i < count; i++) {
      // Non-ASCII text and characters JSON may escape or not: the signed bytes must be the sent ones.
      await h.send(ingest, {
        destinations: ['signed', 'plain'],
        payload: { i, text: `caf\u00e9 \u2603 \u{1f600} <&> "q" \\ ${'x'.repeat(i * 100)}` },
        id: `order-${i}`,
      });
    }
    await waitFor(() => signedSink.unique().length === count && plainSink.unique().length === count, 'every delivery');

    // Every attempt the receiver saw verified (nothing refused), each sequence once when processed.
    expect(receiver.rejected).toEqual([]);
    expectDelivered(signedSink, range(1, count));
    expectDelivered(plainSink, range(1, count));
    for (const delivery of receiver.attempts) {
      expect(delivery.headers['webhook-id']).toBe(delivery.idempotencyKey);
      const timestamp = Number(delivery.headers['webhook-timestamp']);
      expect(Math.abs(timestamp * 1000 - delivery.receivedAt)).toBeLessThan(5_000);
      expect(delivery.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    }
    // A redelivery (after the 503) keeps its webhook-id and is signed afresh.
    for (const sequence of [2, 4]) {
      const tries = receiver.attempts.filter((d) => d.sequence === sequence);
      expect(tries.length).toBeGreaterThanOrEqual(2);
      expect(new Set(tries.map((d) => d.headers['webhook-id'])).size).toBe(1);
    }
    // No secret, no signature headers.
    for (const delivery of plainSink.received) {
      for (const name of WEBHOOK_HEADERS) expect(delivery.headers[name]).toBeUndefined();
    }

    // Now play the attacker against the same receiver, starting from a real delivery.
    const captured = signedSink.received[2]!;
    const realHeaders = Object.fromEntries(WEBHOOK_HEADERS.map((n) => [n, String(captured.headers[n])]));
    const id = realHeaders['webhook-id']!;
    const timestamp = Number(realHeaders['webhook-timestamp']);
    const attempt = async (headers: Record<string, string>, body = captured.rawBody): Promise<number> =>
      (await post(signedSink.url, body, { ...headers, 'reseq-sequence': String(captured.sequence) })).status;
    const forgedBody = captured.rawBody.replace('"i":2', '"i":999');
    expect(forgedBody).not.toBe(captured.rawBody);

    const before = signedSink.received.length;
    // Wrong secret.
    expect(
      await attempt({
        ...realHeaders,
        'webhook-signature': signWebhook(WRONG_SECRET, { id, timestamp, body: captured.rawBody }),
      }),
    ).toBe(401);
    // Body changed, signature kept.
    expect(await attempt(realHeaders, forgedBody)).toBe(401);
    // Id changed (passing a message off as another), signature kept.
    expect(await attempt({ ...realHeaders, 'webhook-id': id.replace(':3:', ':7:') })).toBe(401);
    // Timestamp moved (to dodge the tolerance), signature kept.
    expect(await attempt({ ...realHeaders, 'webhook-timestamp': String(timestamp + 1) })).toBe(401);
    // A genuine request captured ten minutes ago, replayed now.
    const old = Math.floor(Date.now() / 1000) - 600;
    expect(
      await attempt({
        ...realHeaders,
        'webhook-timestamp': String(old),
        'webhook-signature': signWebhook(SECRET, { id, timestamp: old, body: captured.rawBody }),
      }),
    ).toBe(401);
    // No signature at all.
    expect(await attempt({})).toBe(401);
    expect(receiver.rejected).toEqual(
      expect.arrayContaining(['WEBHOOK_SIGNATURE_INVALID', 'WEBHOOK_TIMESTAMP_TOO_OLD', 'WEBHOOK_HEADERS_MISSING']),
    );
    expect(receiver.rejected.filter((c) => c === 'WEBHOOK_SIGNATURE_INVALID').length).toBeGreaterThanOrEqual(3);
    // A verbatim replay within the tolerance verifies, and the webhook-id de-duplication catches it.
    expect(signedSink.received.length).toBe(before);
    const duplicatesBefore = receiver.duplicates.length;
    expect(await attempt(realHeaders)).toBe(200);
    expect(receiver.duplicates.slice(duplicatesBefore)).toEqual([id]);
  });
});
