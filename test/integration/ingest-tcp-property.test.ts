/**
 * Property-based test of TCP ingest (fast-check): random and adversarial lines (random strings,
 * random JSON values, mutated messages, lines past the limit, garbage bytes) interleaved with
 * valid messages on several connections at once. Every valid message must get an ok reply in
 * its position, every other line an error reply, the process must live on, and the destination
 * must receive every valid message, in the order of its sequences.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import { LineClient, tcpIngestEnv, tcpPortOf } from '../fixtures/tcp-client.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { expectDelivered, Harness, pipelineConfig, range } from './helpers.js';

const MAX_MESSAGE_BYTES = 2048;
const CONNECTIONS = 3;

type Line = { kind: 'valid'; withId: boolean } | { kind: 'bad'; bytes: Buffer };

const noNewline = (s: string): string => s.replace(/\n/g, ' ');

/** Lines that are not a valid message for destination `a`. */
const badLine: fc.Arbitrary<Buffer> = fc.oneof(
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(noNewline(s))),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(noNewline(s))),
  fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc
    .uint8Array({ minLength: 1, maxLength: 300 })
    .map((bytes) => Buffer.from(bytes.filter((b) => b !== 0x0a)))
    .filter((b) => b.length > 0 && (b[0] !== 0x7b || b.includes(0xff))),
  // A valid message mutated into an invalid one.
  fc
    .oneof(
      fc.record({
        destination: fc.oneof(fc.integer(), fc.constant(null), fc.constant(['a'])),
        payload: fc.jsonValue(),
      }),
      fc.record({ destination: fc.constant('a') }),
      fc.record({ destination: fc.constant('a'), payload: fc.jsonValue(), extra: fc.jsonValue() }),
      fc.record({ destinations: fc.constant([]), payload: fc.jsonValue() }),
      fc.record({ destination: fc.constant('a'), destinations: fc.constant(['a']), payload: fc.jsonValue() }),
      fc.record({ destination: fc.constant('nowhere'), payload: fc.jsonValue() }),
      fc.record({
        destination: fc.constant('a'),
        payload: fc.jsonValue(),
        id: fc.oneof(fc.integer(), fc.constant('')),
      }),
    )
    .map((v) => Buffer.from(JSON.stringify(v))),
  // Past the limit (sometimes far past it).
  fc
    .integer({ min: MAX_MESSAGE_BYTES + 1, max: 300_000 })
    .map((size) => Buffer.from(`{"destination":"a","payload":"${'z'.repeat(size)}"}`)),
  fc.constant(Buffer.alloc(0)),
);

const line: fc.Arbitrary<Line> = fc.oneof(
  { weight: 2, arbitrary: fc.boolean().map((withId) => ({ kind: 'valid', withId }) as const) },
  { weight: 3, arbitrary: badLine.map((bytes) => ({ kind: 'bad', bytes }) as const) },
);

const scenario = fc.array(fc.record({ connection: fc.nat(CONNECTIONS - 1), line, crlf: fc.boolean() }), {
  minLength: 20,
  maxLength: 200,
  size: 'max',
});

describe('TCP ingest under random and adversarial lines (property)', () => {
  let h: Harness;
  let sink: HttpSink;
  let ingest: AppProcess;

  beforeAll(async () => {
    h = new Harness('tcp property', inject('redisUrl'));
    sink = await h.sink();
    const config = await h.config(
      pipelineConfig({ a: { url: sink.url } }, { ingest: { maxMessageBytes: MAX_MESSAGE_BYTES } }),
    );
    ingest = await h.start('ingest', config, await tcpIngestEnv());
    await h.start('transform-worker', config);
    await h.start('resequencer-sender', config);
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('answers every line in its position, and delivers every valid message in order', async () => {
    /** The payload of each accepted sequence, from the replies. */
    const payloadOf = new Map<number, unknown>();
    let marker = 0;
    let run = 0;

    await fc.assert(
      fc.asyncProperty(scenario, async (items) => {
        run++;
        const clients = await Promise.all(range(1, CONNECTIONS).map(() => LineClient.open(tcpPortOf(ingest.logs))));
        try {
          const sent: { valid: boolean; payload?: unknown }[][] = clients.map(() => []);
          for (const { connection, line: l, crlf } of items) {
            const client = clients[connection]!;
            let bytes: Buffer;
            if (l.kind === 'valid') {
              const payload = { run, marker: ++marker };
              sent[connection]!.push({ valid: true, payload });
              bytes = Buffer.from(
                JSON.stringify({ destination: 'a', payload, ...(l.withId ? { id: `prop-${marker}` } : {}) }),
              );
            } else {
              sent[connection]!.push({ valid: false });
              bytes = l.bytes;
            }
            client.send(crlf ? Buffer.concat([bytes, Buffer.from('\r')]) : bytes);
          }
          for (const [i, client] of clients.entries()) {
            const replies = await client.waitForReplies(sent[i]!.length);
            expect(client.garbage).toEqual([]);
            let lastSequence = 0;
            for (const [k, expected] of sent[i]!.entries()) {
              const reply = replies[k]!;
              if (expected.valid) {
                expect(reply, `line ${k} of connection ${i}`).toMatchObject({ ok: true });
                const sequence = reply.sequences!.a!;
                // One connection's messages are accepted in the order they were sent.
                expect(sequence).toBeGreaterThan(lastSequence);
                lastSequence = sequence;
                payloadOf.set(sequence, expected.payload);
              } else {
                expect(reply.ok, `line ${k} of connection ${i}`).toBe(false);
                expect([400, 404, 413]).toContain(reply.status);
                expect(reply.code).toMatch(/^INGEST_/);
              }
            }
          }
          expect(clients.some((c) => c.closed)).toBe(false);
        } finally {
          for (const client of clients) client.close();
        }
      }),
      { numRuns: 30, endOnFailure: true },
    );

    expect(ingest.child.exitCode).toBeNull();
    const total = payloadOf.size;
    expect(total).toBeGreaterThan(100);
    await waitFor(() => sink.unique().length >= total, `${total} deliveries`, 60_000);
    expectDelivered(sink, range(1, total));
    for (const delivery of sink.unique()) expect(delivery.body).toEqual(payloadOf.get(delivery.sequence));
  });
});
