import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ReplayGuard,
  signWebhook,
  verifyWebhook,
  isWebhookSecret,
  WebhookVerificationError,
  type WebhookErrorCode,
} from './index.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const OTHER = `whsec_${randomBytes(32).toString('base64')}`;
const NOW_MS = 1_700_000_000_000;
const NOW = NOW_MS / 1000;
const BODY = '{"amount":12,"note":"caf\u00e9 \u2603"}';

function headersFor(secret: string, id = 'billing:1:order-17', timestamp = NOW, body: string | Uint8Array = BODY) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, { id, timestamp, body }),
  };
}

function codeOf(run: () => unknown): WebhookErrorCode | 'none' {
  try {
    run();
    return 'none';
  } catch (err) {
    if (err instanceof WebhookVerificationError) return err.code;
    throw err;
  }
}

describe('signWebhook', () => {
  it('matches the Standard Webhooks reference vector', () => {
    // From the spec's reference libraries (standard-webhooks, test "sign function works").
    const signature = signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', {
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestamp: 1614265330,
      body: '{"test": 2432232314}',
    });
    expect(signature).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('signs bytes and the same text alike', () => {
    const content = { id: 'a', timestamp: NOW };
    expect(signWebhook(SECRET, { ...content, body: Buffer.from(BODY, 'utf8') })).toBe(
      signWebhook(SECRET, { ...content, body: BODY }),
    );
  });
});

describe('isWebhookSecret', () => {
  it.each([
    [SECRET, true],
    [`whsec_${randomBytes(16).toString('base64')}`, true],
    [`whsec_${randomBytes(16).toString('base64').replace(/=+$/, '')}`, true],
    [`whsec_${randomBytes(15).toString('base64')}`, false],
    [randomBytes(32).toString('base64'), false],
    ['whsec_not base64 at all!!!!!!!!!!!!', false],
    ['whsec_', false],
  ])('%s → %s', (secret, valid) => {
    expect(isWebhookSecret(secret)).toBe(valid);
  });
});

describe('verifyWebhook', () => {
  it('accepts a request signed with the secret, with Node, fetch or mixed-case headers', () => {
    const headers = headersFor(SECRET);
    const expected = { id: 'billing:1:order-17', timestamp: NOW };
    expect(verifyWebhook({ secret: SECRET, headers, body: BODY, now: NOW_MS })).toEqual(expected);
    expect(verifyWebhook({ secret: SECRET, headers: new Headers(headers), body: BODY, now: NOW_MS })).toEqual(expected);
    const mixed = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook({ secret: SECRET, headers: mixed, body: Buffer.from(BODY), now: NOW_MS })).toEqual(expected);
  });

  it('rejects the wrong secret, a changed body, id or timestamp', () => {
    const headers = headersFor(SECRET);
    const verify =
      (h: Record<string, string>, body = BODY, secret = SECRET) =>
      () =>
        verifyWebhook({ secret, headers: h, body, now: NOW_MS });
    expect(codeOf(verify(headers, BODY, OTHER))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(codeOf(verify(headers, BODY.replace('12', '13')))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(codeOf(verify(headers, `${BODY} `))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(codeOf(verify({ ...headers, 'webhook-id': 'billing:2:order-17' }))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(codeOf(verify({ ...headers, 'webhook-timestamp': String(NOW + 1) }))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(codeOf(verify({ ...headers, 'webhook-signature': 'v1,' }))).toBe('WEBHOOK_SIGNATURE_INVALID');
    expect(
      codeOf(verify({ ...headers, 'webhook-signature': headers['webhook-signature'].replace('v1,', 'v2,') })),
    ).toBe('WEBHOOK_SIGNATURE_INVALID');
  });

  it('accepts any matching signature of several, and any of several secrets (rotation)', () => {
    const good = headersFor(SECRET);
    const other = headersFor(OTHER)['webhook-signature'];
    const several = { ...good, 'webhook-signature': `${other} v1a,xyz ${good['webhook-signature']}` };
    expect(codeOf(() => verifyWebhook({ secret: SECRET, headers: several, body: BODY, now: NOW_MS }))).toBe('none');
    expect(codeOf(() => verifyWebhook({ secret: [OTHER, SECRET], headers: good, body: BODY, now: NOW_MS }))).toBe(
      'none',
    );
  });

  it('rejects timestamps outside the tolerance either way, and non-numeric ones', () => {
    const at = (timestamp: number, toleranceSeconds?: number) => () =>
      verifyWebhook({
        secret: SECRET,
        headers: headersFor(SECRET, 'x', timestamp),
        body: BODY,
        now: NOW_MS,
        toleranceSeconds,
      });
    expect(codeOf(at(NOW - 300))).toBe('none');
    expect(codeOf(at(NOW - 301))).toBe('WEBHOOK_TIMESTAMP_TOO_OLD');
    expect(codeOf(at(NOW + 301))).toBe('WEBHOOK_TIMESTAMP_TOO_NEW');
    expect(codeOf(at(NOW - 10, 5))).toBe('WEBHOOK_TIMESTAMP_TOO_OLD');
    const headers = { ...headersFor(SECRET), 'webhook-timestamp': '17e8' };
    expect(codeOf(() => verifyWebhook({ secret: SECRET, headers, body: BODY, now: NOW_MS }))).toBe(
      'WEBHOOK_TIMESTAMP_INVALID',
    );
  });

  it('names missing headers and a malformed secret without echoing it', () => {
    const headers: Record<string, string> = headersFor(SECRET);
    for (const name of Object.keys(headers)) {
      const { [name]: _gone, ...rest } = headers;
      expect(codeOf(() => verifyWebhook({ secret: SECRET, headers: rest, body: BODY, now: NOW_MS }))).toBe(
        'WEBHOOK_HEADERS_MISSING',
      );
    }
    const bad = 'whsec_tooshort';
    try {
      verifyWebhook({ secret: bad, headers, body: BODY, now: NOW_MS });
      expect.unreachable();
    } catch (err) {
      expect((err as WebhookVerificationError).code).toBe('WEBHOOK_SECRET_INVALID');
      expect((err as Error).message).not.toContain('tooshort');
    }
  });
});

describe('ReplayGuard', () => {
  it('accepts an id once within the window and forgets it after', () => {
    const guard = new ReplayGuard({ toleranceSeconds: 300 });
    expect(guard.firstSeen({ id: 'a', timestamp: NOW }, NOW_MS)).toBe(true);
    expect(guard.firstSeen({ id: 'a', timestamp: NOW }, NOW_MS + 1000)).toBe(false);
    expect(guard.firstSeen({ id: 'b', timestamp: NOW }, NOW_MS + 1000)).toBe(true);
    // A redelivery with a later timestamp keeps the id remembered for longer.
    expect(guard.firstSeen({ id: 'a', timestamp: NOW + 200 }, NOW_MS + 200_000)).toBe(false);
    expect(guard.firstSeen({ id: 'a', timestamp: NOW + 200 }, NOW_MS + 400_000)).toBe(false);
    expect(guard.firstSeen({ id: 'b', timestamp: NOW + 400 }, NOW_MS + 400_000)).toBe(true);
    guard.forget('b');
    expect(guard.firstSeen({ id: 'b', timestamp: NOW + 400 }, NOW_MS + 400_000)).toBe(true);
  });

  it('holds at most maxEntries ids', () => {
    const guard = new ReplayGuard({ maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) guard.firstSeen({ id, timestamp: NOW }, NOW_MS);
    expect(guard.size).toBe(3);
    expect(guard.firstSeen({ id: 'a', timestamp: NOW }, NOW_MS)).toBe(true);
  });
});
