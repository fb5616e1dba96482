/**
 * HTTP ingest under misbehaving clients, against the real ingest, transform-worker, sender and
 * HTTP sinks (adversarial-ingest.ts): slow and half-open connections hold up no one else, and a
 * fast-check property sends random and mutated requests from several clients at once, then
 * checks each answer against the rules and that every accepted message arrived exactly once, in
 * order. Single bad requests: ingest-http-adversarial.test.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import { expectedAnswer, type ExpectedAnswer } from '../fixtures/ingest-oracle.js';
import { clientScenarios, materialize } from '../fixtures/ingest-requests.js';
import { RawConnection } from '../fixtures/raw-http.js';
import {
  ALL,
  AdversarialPipeline,
  EXAMPLE,
  expectCoded,
  json,
  KNOWN,
  LIMIT,
  PROMPT_MS,
  PROPERTY,
  request,
} from './adversarial-ingest.js';
import { range, type HttpAnswer } from './helpers.js';

const NAME = 'ingest http slow clients';

describe('HTTP ingest under slow, half-open and random clients', () => {
  let p: AdversarialPipeline;
  beforeAll(async () => {
    p = await AdversarialPipeline.start(NAME, inject('redisUrl'));
  });
  afterAll(async () => {
    await p.cleanup();
  });

  it('holds up no one while connections sit half-open, Content-Length promising more than was sent', async () => {
    const held = await Promise.all(range(1, 20).map(() => RawConnection.open(p.base)));
    for (const connection of held) connection.write(request(['Content-Length: 1000'], '{"destination":"a","payl'));
    try {
      await sleep(200);
      const before = await p.snapshot();
      const started = Date.now();
      const answers = await Promise.all(
        range(1, 4).map(async (client) => {
          const mine: HttpAnswer[] = [];
          for (let n = 0; n < 10; n++) mine.push(await p.sendValid(EXAMPLE[(client + n) % 2]!));
          return mine;
        }),
      );
      await p.expectAllDelivered(EXAMPLE, PROMPT_MS, answers.flat());
      expect(Date.now() - started, 'valid traffic took').toBeLessThan(PROMPT_MS);
      const after = await p.snapshot();
      expect(after.added - before.added).toBe(40);
      // Nothing was answered on the half-open connections but, perhaps, a timeout.
      for (const connection of held) {
        const response = connection.response();
        if (response) expect(response.status, json(response)).toBeGreaterThanOrEqual(400);
        if (response) expect(response.status, json(response)).toBeLessThan(500);
      }
    } finally {
      for (const connection of held) connection.close();
    }
    await p.expectServing();
  });

  it('holds up no one while slowloris clients send a byte every two seconds', async () => {
    const slowHeaders = await Promise.all(range(1, 10).map(() => RawConnection.open(p.base)));
    const slowBodies = await Promise.all(range(1, 10).map(() => RawConnection.open(p.base)));
    for (const c of slowHeaders) c.write('POST /v1/messages HTTP/1.1\r\nHost: ingest\r\nX-Slow: ');
    for (const c of slowBodies) c.write(request(['Content-Length: 200']));
    const drip = setInterval(() => {
      for (const c of [...slowHeaders, ...slowBodies]) c.write('x');
    }, 2_000);
    try {
      const latencies: number[] = [];
      const answers: HttpAnswer[] = [];
      // One wave of valid messages every half second for six seconds, each timed.
      for (let wave = 0; wave < 12; wave++) {
        const started = Date.now();
        answers.push(...(await Promise.all([p.sendValid('a'), p.sendValid('b'), p.sendValid('a')])));
        latencies.push(Date.now() - started);
        await sleep(500);
      }
      expect(Math.max(...latencies), `latencies ${json(latencies)}`).toBeLessThan(1_000);
      await p.expectAllDelivered(EXAMPLE, PROMPT_MS, answers);
      for (const c of [...slowHeaders, ...slowBodies]) {
        const response = c.response();
        if (response) expect(response.status, json(response)).toBe(408);
      }
    } finally {
      clearInterval(drip);
      for (const c of [...slowHeaders, ...slowBodies]) c.close();
    }
    await p.expectServing();
  });

  describe('property: random and mutated requests from several clients at once', () => {
    const clientsArb = clientScenarios({ destinations: PROPERTY, known: KNOWN, maxMessageBytes: LIMIT });

    interface Exchange {
      client: number;
      bytes: Uint8Array;
      expected: ExpectedAnswer;
      answers: HttpAnswer[];
    }

    function describeExchange(e: Exchange): string {
      const text = Buffer.from(e.bytes).toString('utf8');
      return `client ${e.client}, body (${e.bytes.byteLength} bytes) ${text.slice(0, 200)}: expected ${json(e.expected).slice(0, 200)}`;
    }

    function check(e: Exchange): void {
      const [first, ...again] = e.answers;
      const context = `${describeExchange(e)}; answered ${e.answers.map((a) => `${a.status} ${a.text.slice(0, 200)}`).join(' | ')}`;
      expect(first, context).toBeDefined();
      const { expected } = e;
      if (expected.outcome === 'accepted') {
        expect(first!.status, context).toBe(202);
        if (expected.id !== undefined) expect(first!.body.id, context).toBe(expected.id);
        expect(Object.keys(first!.body.sequences as object).sort(), context).toEqual([...expected.destinations].sort());
      } else if (expected.outcome === 'refused') {
        expect(first!.status, context).toBe(expected.status);
        expect(expected.codes, context).toContain(first!.body.code);
        expectCoded(first!, expected.status);
      } else if (first!.status !== 202) {
        expectCoded(first!, 400);
      }
      // A resend gets the same answer: the same sequences, or the same error code. Without an
      // id there is nothing to recognise it by: it is a new message.
      for (const answer of again) {
        if (first!.status === 202 && expected.outcome === 'accepted' && expected.id === undefined) {
          expect(answer.status, context).toBe(202);
          expect(answer.body.id, context).not.toBe(first!.body.id);
          continue;
        }
        expect({ status: answer.status, code: answer.body.code }, context).toEqual({
          status: first!.status,
          code: first!.body.code,
        });
        if (answer.status === 202) expect(answer.body, context).toEqual(first!.body);
      }
    }

    it('answers each request as the rules say, then delivers every accepted message once, in order', async () => {
      let run = 0;
      const payloads = new Map<string, unknown>();
      /** How often each answer came, to show the runs tried both sides of every rule. */
      const seen = new Map<string, number>();
      const quiet = (): boolean => PROPERTY.every((d) => p.sinks[d]!.unique().length >= p.ledger.count(d));
      await fc.assert(
        fc.asyncProperty(clientsArb, async (clients) => {
          run++;
          // Deliveries of earlier runs were checked by them (a failed run's come in late: wait).
          await waitFor(quiet, 'the last run delivered', 5_000).catch(() => undefined);
          const checked = Object.fromEntries(PROPERTY.map((d) => [d, p.sinks[d]!.unique().length]));
          const settled = await Promise.allSettled(
            clients.map(async (requests, client) => {
              const mine: Exchange[] = [];
              for (const [n, r] of requests.entries()) {
                const bytes = materialize(r, `pbt-${run}-${client}-${n}`);
                const headers = { 'content-type': r.contentType };
                const answers: HttpAnswer[] = [];
                for (let i = 0; i <= r.resends; i++) {
                  const answer = await p.send(bytes, headers).catch((err: unknown) => {
                    throw new Error(`connection failed for ${Buffer.from(bytes).toString().slice(0, 200)}`, {
                      cause: err,
                    });
                  });
                  answers.push(answer);
                  if (answer.status === 202 && !payloads.has(answer.body.id as string)) {
                    // TextDecoder drops a leading byte order mark, as ingest's parser does.
                    const sent = JSON.parse(new TextDecoder().decode(bytes)) as { payload: unknown };
                    payloads.set(answer.body.id as string, sent.payload);
                  }
                }
                mine.push({
                  client,
                  bytes,
                  expected: expectedAnswer(bytes, { maxMessageBytes: LIMIT, destinations: KNOWN }),
                  answers,
                });
              }
              return mine;
            }),
          );
          // Every client finished (no straggler runs into the next run), then the first failure counts.
          const exchanges = settled.map((outcome) => {
            if (outcome.status === 'rejected') throw outcome.reason;
            return outcome.value;
          });
          for (const e of exchanges.flat()) {
            check(e);
            const { status, body: answered } = e.answers[0]!;
            const key = typeof answered.code === 'string' ? `${status} ${answered.code}` : String(status);
            seen.set(key, (seen.get(key) ?? 0) + 1);
          }
          expect(p.ingest.child.exitCode, p.h.dumpLogs()).toBeNull();

          // One client's acceptances for a destination come in the order it was answered.
          for (const mine of exchanges) {
            for (const d of PROPERTY) {
              const given = [
                ...new Set(
                  mine
                    .flatMap((e) => e.answers)
                    .filter((a) => a.status === 202)
                    .map((a) => (a.body.sequences as Record<string, number>)[d])
                    .filter((s) => s !== undefined),
                ),
              ];
              expect(given, `client ${mine[0]?.client} on ${d}`).toEqual([...given].sort((x, y) => x - y));
            }
          }
          await p.expectAllDelivered(PROPERTY);
          for (const d of PROPERTY) {
            for (const delivery of p.sinks[d]!.unique().slice(checked[d])) {
              // What the test transform makes of the payload that was sent.
              const sent: object = payloads.get(delivery.messageId) ?? {};
              expect(delivery.body, `${d} #${delivery.sequence}`).toEqual({
                ...sent,
                transformed: true,
                destination: d,
                sequence: delivery.sequence,
              });
            }
          }
        }),
        { numRuns: 50 },
      );
      if (process.env.RESEQ_TEST_VERBOSE) console.log(json(Object.fromEntries(seen)));
      for (const answer of [
        '202',
        '400 INGEST_MALFORMED_JSON',
        '400 INGEST_INVALID_BODY',
        '404 INGEST_UNKNOWN_DESTINATION',
        '413 INGEST_PAYLOAD_TOO_LARGE',
      ])
        expect(seen.get(answer) ?? 0, `${answer} in ${json(Object.fromEntries(seen))}`).toBeGreaterThan(0);
      await p.expectServing();
    });
  });

  it('delivered every message accepted by any test exactly once, in order, and refused ones left no trace', async () => {
    await p.expectAllDelivered(ALL);
    expect(p.ingest.child.exitCode).toBeNull();
  });
});
