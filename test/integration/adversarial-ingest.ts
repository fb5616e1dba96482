/**
 * The pipeline the HTTP ingest adversarial tests share (ingest-http-adversarial.test.ts and
 * ingest-http-slow-clients.test.ts, one each): the real ingest, transform-worker and sender with
 * an HTTP sink per destination, a ledger of every 202, and the checks they make: a refused request
 * left Redis as it was, ingest still serves, and every accepted message arrived once, in order.
 */
import { expect } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import type { WireResponse } from '../fixtures/raw-http.js';
import {
  deadLetters,
  expectDelivered,
  Harness,
  ingestUrl,
  pipelineConfig,
  range,
  TEST_TRANSFORM,
  type HttpAnswer,
} from './helpers.js';

/** Small enough to send past quickly, large enough that 100,000 `[` reach the JSON parser. */
export const LIMIT = 256 * 1024;
/** Destinations of the example tests, and of the property. */
export const EXAMPLE = ['a', 'b'] as const;
export const PROPERTY = ['p1', 'p2', 'p3'] as const;
export const ALL: readonly string[] = [...EXAMPLE, ...PROPERTY];
export const KNOWN = new Set(ALL);
/** How long valid traffic may take while others misbehave (it takes milliseconds when idle). */
export const PROMPT_MS = 3_000;

export const json = (value: unknown): string => JSON.stringify(value);

/**
 * Every 202 of the file: destination -> sequence -> id, and id -> the answer's sequences. At the
 * end each sink must hold exactly these, in sequence order, so a refused request that wrote
 * something (a sequence nobody was answered 202 for) shows up as a gap.
 */
export class Ledger {
  readonly bySequence = new Map<string, Map<number, string>>(ALL.map((d) => [d, new Map()]));
  readonly byId = new Map<string, string>();
  readonly conflicts: string[] = [];

  record(answer: HttpAnswer): void {
    if (answer.status !== 202) return;
    const id = answer.body.id as string;
    const sequences = answer.body.sequences as Record<string, number>;
    const seen = this.byId.get(id);
    if (seen !== undefined && seen !== json(sequences))
      this.conflicts.push(`id ${id} answered ${seen} and later ${json(sequences)}`);
    this.byId.set(id, json(sequences));
    for (const [destination, sequence] of Object.entries(sequences)) {
      const ids = this.bySequence.get(destination);
      if (!ids) {
        this.conflicts.push(`202 for unconfigured destination ${destination}`);
        continue;
      }
      const other = ids.get(sequence);
      if (other !== undefined && other !== id)
        this.conflicts.push(`${destination} #${sequence} given to ${other} and ${id}`);
      ids.set(sequence, id);
    }
  }

  count(destination: string): number {
    return this.bySequence.get(destination)?.size ?? 0;
  }
}

/** What a refused request must leave as it was: the stream, the counters, the remembered ids. */
export interface Snapshot {
  added: number;
  sequences: Record<string, string>;
  ids: number;
}

export function expectCoded(answer: HttpAnswer, statuses: number | readonly number[], codes?: readonly string[]): void {
  const allowed = typeof statuses === 'number' ? [statuses] : statuses;
  const context = `${answer.status} ${answer.text.slice(0, 300)}`;
  expect(allowed, context).toContain(answer.status);
  expect(typeof answer.body.code, context).toBe('string');
  if (codes) expect(codes, context).toContain(answer.body.code);
  expect(typeof answer.body.message, context).toBe('string');
  expect((answer.body.message as string).length, context).toBeGreaterThan(0);
  expect(answer.headers.get('content-type'), context).toMatch(/^application\/json/);
}

/** A raw response's body as `{ code, message }`, or an assertion failure saying what it was. */
export function expectCodedWire(response: WireResponse | undefined, statuses: readonly number[]): void {
  const context = json(response);
  expect(response, 'no response').toBeDefined();
  expect(statuses, context).toContain(response!.status);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(response!.body) as Record<string, unknown>;
  } catch {
    // Asserted just below.
  }
  expect(typeof body.code, context).toBe('string');
  expect(typeof body.message, context).toBe('string');
}

/** A raw POST to the messages route: the head lines given, then the body. */
export function request(headLines: string[], body: string | Buffer = ''): Buffer {
  return Buffer.concat([
    Buffer.from(`POST /v1/messages HTTP/1.1\r\nHost: ingest\r\n${headLines.map((l) => `${l}\r\n`).join('')}\r\n`),
    typeof body === 'string' ? Buffer.from(body) : body,
  ]);
}

/** One running pipeline, its sinks and its ledger. */
export class AdversarialPipeline {
  readonly sinks: Record<string, HttpSink> = {};
  readonly ledger = new Ledger();
  #fresh = 0;

  private constructor(
    readonly h: Harness,
    readonly ingest: AppProcess,
  ) {}

  /** Starts the apps with every destination of {@link ALL}, and takes one message for each example one. */
  static async start(name: string, redisUrl: string): Promise<AdversarialPipeline> {
    const h = new Harness(name, redisUrl);
    const sinks: Record<string, HttpSink> = {};
    for (const d of ALL) sinks[d] = await h.sink();
    const config = await h.config(
      pipelineConfig(Object.fromEntries(ALL.map((d) => [d, { url: sinks[d]!.url }])), {
        ingest: { maxMessageBytes: LIMIT },
      }),
    );
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '10' });
    await h.start('resequencer-sender', config);
    const pipeline = new AdversarialPipeline(h, ingest);
    Object.assign(pipeline.sinks, sinks);
    await pipeline.sendValid('a');
    await pipeline.sendValid('b');
    return pipeline;
  }

  /** Ingest's base URL. */
  get base(): string {
    return ingestUrl(this.ingest);
  }

  freshId(tag: string): string {
    return `${tag}-${++this.#fresh}`;
  }

  /**
   * POSTs the bytes as they are, with Content-Type application/json unless `headers` say
   * otherwise (`undefined`: no such header at all). Every 202 goes to the ledger.
   */
  async send(body: string | Uint8Array, headers: Record<string, string | undefined> = {}): Promise<HttpAnswer> {
    const sent: Record<string, string> = {};
    for (const [name, value] of Object.entries({ 'content-type': 'application/json', ...headers }))
      if (value !== undefined) sent[name] = value;
    const response = await fetch(`${this.base}/v1/messages`, {
      method: 'POST',
      headers: sent,
      body: typeof body === 'string' ? Buffer.from(body) : body,
    });
    const text = await response.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // Asserted by the callers.
    }
    const answer = { status: response.status, headers: response.headers, body: parsed, text };
    this.ledger.record(answer);
    return answer;
  }

  async sendValid(destination: string, payload: unknown = { n: this.#fresh }): Promise<HttpAnswer> {
    const answer = await this.send(json({ destination, payload, id: this.freshId('valid') }));
    expect(answer.status, answer.text).toBe(202);
    return answer;
  }

  async snapshot(): Promise<Snapshot> {
    const { h } = this;
    const info = (await h.redis.call('XINFO', 'STREAM', h.key('in'))) as unknown[];
    let ids = 0;
    for await (const keys of h.redis.scanStream({ match: h.key('id:*'), count: 1000 }))
      ids += (keys as string[]).length;
    return {
      added: Number(info[info.indexOf('entries-added') + 1]),
      sequences: await h.redis.hgetall(h.key('seq')),
      ids,
    };
  }

  /** Runs `act`, then expects Redis to be as it was before. */
  async unchanged(act: () => Promise<void>): Promise<void> {
    const before = await this.snapshot();
    await act();
    expect(await this.snapshot()).toEqual(before);
  }

  /** The process lives, and takes and delivers a valid message at once. */
  async expectServing(): Promise<void> {
    expect({ exit: this.ingest.child.exitCode, signal: this.ingest.child.signalCode }, this.h.dumpLogs()).toEqual({
      exit: null,
      signal: null,
    });
    await this.expectAllDelivered(EXAMPLE, PROMPT_MS, [await this.sendValid('a')]);
  }

  /**
   * Waits until every 202 of the ledger for `destinations` reached its sink, then expects the
   * sinks to hold exactly those (by sequence and id), in order, once each after de-duplication.
   */
  async expectAllDelivered(
    destinations: readonly string[],
    timeoutMs = 15_000,
    answers: HttpAnswer[] = [],
  ): Promise<void> {
    const { sinks, ledger, h } = this;
    const done = (): boolean => destinations.every((d) => sinks[d]!.unique().length >= ledger.count(d));
    await waitFor(done, 'deliveries', timeoutMs).catch(async () => {
      const counts = destinations.map((d) => `${d}: ${sinks[d]!.unique().length}/${ledger.count(d)}`);
      throw new Error(
        `not delivered within ${timeoutMs} ms (${counts.join(', ')}) after ${json(answers.map((a) => a.text))}\n` +
          `dead letters: ${json(await deadLetters(h))}\n${h.dumpLogs()}`,
      );
    });
    expect(ledger.conflicts).toEqual([]);
    for (const d of destinations) {
      const ids = ledger.bySequence.get(d)!;
      const expected = range(1, ids.size);
      expect(
        [...ids.keys()].sort((x, y) => x - y),
        `sequences given out for ${d}`,
      ).toEqual(expected);
      expectDelivered(sinks[d]!, expected);
      expect(sinks[d]!.unique().map((delivery) => delivery.messageId)).toEqual(expected.map((s) => ids.get(s)));
    }
  }

  async cleanup(): Promise<void> {
    await this.h.cleanup();
  }
}
