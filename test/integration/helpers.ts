/**
 * Shared plumbing of the process-level integration tests: one {@link Harness} per test keeps
 * track of every app process, sink, config file and Redis client it starts and stops them all
 * in `cleanup()`, and knows the key names of its pipeline (one RESEQ_PREFIX per test).
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { compareIds } from '@reseq/store';
import { Redis } from 'ioredis';
import { startApp, writeConfig, type AppName, type AppProcess, type TempConfig } from '../fixtures/apps.js';
import { startHttpSink, type Delivery, type HttpSink } from '../fixtures/http-sink.js';
import { deleteKeys, uniquePrefix } from '../fixtures/redis.js';

/** An HTTP answer, body parsed as JSON where it is JSON. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

/** Sends `body` (an object is JSON-encoded, a string goes as is) as a POST. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return answer(response);
}

/** A GET. */
export async function get(url: string): Promise<HttpAnswer> {
  return answer(await fetch(url));
}

async function answer(response: Response): Promise<HttpAnswer> {
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON (e.g. /metrics): callers look at `text`.
  }
  return { status: response.status, headers: response.headers, body, text };
}

/** A TCP port that was free a moment ago (for METRICS_PORT, which does not log its port). */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    server.close();
    await once(server, 'close');
    if (address !== null && typeof address === 'object' && address.port !== 6379) return address.port;
  }
}

/** The HTTP port an ingest process logged in its 'ingest listening' line. */
export function ingestUrl(app: AppProcess): string {
  const line = app.logs.find((l) => l.msg === 'ingest listening');
  if (typeof line?.port !== 'number') throw new Error('ingest has not logged its port');
  return `http://127.0.0.1:${line.port}`;
}

/** Sequences of deliveries, in arrival order. */
export function sequences(deliveries: readonly Delivery[]): number[] {
  return deliveries.map((d) => d.sequence);
}

/** `[from, from + 1, ..., to]`. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** One test's pipeline: its prefix, its processes, sinks and clients. */
export class Harness {
  readonly prefix: string;
  readonly apps: AppProcess[] = [];
  readonly sinks: HttpSink[] = [];
  readonly #configs: TempConfig[] = [];
  readonly #clients: Redis[] = [];
  #redis: Redis | undefined;

  constructor(
    name: string,
    readonly redisUrl: string,
  ) {
    this.prefix = uniquePrefix(name);
  }

  /** A client on the test's Redis, for assertions. */
  get redis(): Redis {
    this.#redis ??= this.client();
    return this.#redis;
  }

  /** A client of its own (closed in cleanup) that gives up at once when Redis is down. */
  client(url = this.redisUrl): Redis {
    const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (times) => Math.min(times * 100, 1000) });
    client.on('error', () => {
      // A killed test Redis: the assertions see failed commands instead.
    });
    this.#clients.push(client);
    return client;
  }

  /** Key `{<prefix>}:<suffix>`. */
  key(suffix: string): string {
    return `{${this.prefix}}:${suffix}`;
  }

  /** Writes a config file, removed in cleanup. */
  async config(config: unknown): Promise<string> {
    const written = await writeConfig(config);
    this.#configs.push(written);
    return written.path;
  }

  /** Starts a sink, closed in cleanup. */
  async sink(): Promise<HttpSink> {
    const sink = await startHttpSink();
    this.sinks.push(sink);
    return sink;
  }

  /** Starts an app on this pipeline (REDIS_URL, RESEQ_PREFIX, RESEQ_CONFIG set), stopped in cleanup. */
  async start(name: AppName, configPath: string, env: Record<string, string> = {}): Promise<AppProcess> {
    const app = await startApp(name, {
      env: {
        REDIS_URL: this.redisUrl,
        RESEQ_PREFIX: this.prefix,
        RESEQ_CONFIG: configPath,
        HTTP_PORT: '0',
        TCP_PORT: '0',
        ...env,
      },
    });
    this.apps.push(app);
    return app;
  }

  /** Sends one message through an ingest and expects a 202. */
  async send(
    ingest: AppProcess,
    message: { destination?: string; destinations?: string[]; payload: unknown; id?: string },
  ): Promise<{ id: string; sequences: Record<string, number> }> {
    const reply = await post(`${ingestUrl(ingest)}/v1/messages`, message);
    if (reply.status !== 202) throw new Error(`ingest answered ${reply.status}: ${reply.text}`);
    return reply.body as { id: string; sequences: Record<string, number> };
  }

  /** Log lines of every app, for a failing test's output. */
  dumpLogs(last = 40): string {
    return this.apps
      .map(
        (app) =>
          `--- ${app.name} (pid ${app.child.pid})\n${app.logs
            .slice(-last)
            .map((l) => JSON.stringify(l))
            .join('\n')}`,
      )
      .join('\n');
  }

  /** SIGKILLs what still runs, closes sinks and clients, deletes the pipeline's keys. */
  async cleanup(): Promise<void> {
    await Promise.all(this.apps.splice(0).map((app) => app.kill()));
    await Promise.all(this.sinks.splice(0).map((sink) => sink.close()));
    await Promise.all(this.#configs.splice(0).map((c) => c.remove()));
    await deleteKeys(this.redis, `{${this.prefix}}`).catch(() => undefined);
    for (const client of this.#clients.splice(0)) client.disconnect();
    this.#redis = undefined;
  }
}

/** The value of an unlabelled-by-test metric (labels such as `app` ignored; summed over series). */
export async function metricValue(port: number, name: string): Promise<number> {
  const { text } = await get(`http://127.0.0.1:${port}/metrics`);
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) {
      total += Number(match[3]);
      found = true;
    }
  }
  if (!found) throw new Error(`no metric ${name} on port ${port}`);
  return total;
}

/** One HTTP destination of {@link pipelineConfig}. */
export interface TestDestination {
  url: string;
  onDeadLetter?: 'block' | 'skip';
}

/**
 * A config for a whole pipeline with short timings, so retries, take-overs and lease moves
 * happen within a second or two. `overrides` replaces whole sections.
 */
export function pipelineConfig(
  destinations: Record<string, TestDestination>,
  overrides: { transform?: object; worker?: object; sender?: object; ingest?: object } = {},
): Record<string, unknown> {
  return {
    destinations: Object.fromEntries(
      Object.entries(destinations).map(([name, d]) => [
        name,
        {
          type: 'http',
          url: d.url,
          timeoutMs: 5_000,
          retry: { baseMs: 20, maxMs: 200 },
          ...(d.onDeadLetter ? { onDeadLetter: d.onDeadLetter } : {}),
        },
      ]),
    ),
    transform: { retry: { baseMs: 20, maxMs: 100 }, ...overrides.transform },
    worker: { claimIdleMs: 1_000, claimIntervalMs: 200, shutdownGraceMs: 10_000, ...overrides.worker },
    sender: { leaseTtlMs: 1_000, ...overrides.sender },
    ...(overrides.ingest ? { ingest: overrides.ingest } : {}),
  };
}

/** The test transform (random delay, `fail`, `poison`, `drop`). */
export const TEST_TRANSFORM = resolve(import.meta.dirname, '../fixtures/transforms/random-delay.mjs');

/** Reads the dead-letter stream as field maps. */
export async function deadLetters(h: Harness): Promise<Record<string, string>[]> {
  const entries = await h.redis.xrange(h.key('dlq'), '-', '+');
  return entries.map(([, fields]) => {
    const map: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i]!] = fields[i + 1]!;
    return map;
  });
}

/**
 * Expects `sink` to have taken exactly `expected` (in this order, after Idempotency-Key
 * de-duplication), and no sequence ever after a higher one in the raw arrivals.
 */
export function expectDelivered(sink: HttpSink, expected: readonly number[]): void {
  const unique = sink.unique();
  if (JSON.stringify(sequences(unique)) !== JSON.stringify(expected)) {
    throw new Error(
      `expected sequences ${JSON.stringify(expected)}, got ${JSON.stringify(sequences(unique))} ` +
        `(raw ${JSON.stringify(sequences(sink.received))})`,
    );
  }
  // A redelivery (after a crash) repeats the last one at most; nothing goes back further.
  const raw = sequences(sink.received);
  for (let i = 1; i < raw.length; i++) {
    if (raw[i]! < raw[i - 1]!) {
      throw new Error(`sequence ${raw[i]} arrived after ${raw[i - 1]}: ${JSON.stringify(raw)}`);
    }
  }
}

/** One response parsed off a raw HTTP/1.1 connection. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One keep-alive HTTP/1.1 connection, used request after request the way a pooled client uses
 * it (fetch hides which connection a request goes on; the shutdown tests need to know).
 */
export class KeepAliveConnection {
  readonly #socket: Socket;
  #buffer = '';
  #closed = false;
  #waiter: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', () => {
      // A reset shows up as `closed`.
    });
  }

  static async open(base: string): Promise<KeepAliveConnection> {
    const { hostname, port } = new URL(base);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    return new KeepAliveConnection(socket);
  }

  /** Whether the server closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a JSON POST; resolves with the response, or 'closed' when the server closed first. */
  async post(path: string, body: string): Promise<RawResponse | 'closed'> {
    if (this.#closed) return 'closed';
    this.#socket.write(
      `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    for (;;) {
      const parsed = this.#parse();
      if (parsed) return parsed;
      if (this.#closed) return 'closed';
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  close(): void {
    this.#socket.destroy();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  #parse(): RawResponse | undefined {
    const headEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) return undefined;
    const [statusLine = '', ...lines] = this.#buffer.slice(0, headEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.#buffer.length < headEnd + 4 + length) return undefined;
    const body = this.#buffer.slice(headEnd + 4, headEnd + 4 + length);
    this.#buffer = this.#buffer.slice(headEnd + 4 + length);
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }
}

/**
 * Whether the workers have read every entry of the input stream (none waits to be read), and
 * how many entries each worker holds.
 */
export async function everyEntryTaken(h: Harness): Promise<{ taken: boolean; pending: Record<string, number> }> {
  // The group has been handed every entry the stream holds (its last-delivered-id is the stream's
  // last entry), whether or not some are settled already: settled entries stay in the stream
  // until everything before them is settled, so XLEN alone does not say it.
  const input = h.key('in');
  const reply = await h.redis
    .multi()
    .xrevrange(input, '+', '-', 'COUNT', 1)
    .xinfo('GROUPS', input)
    .xpending(input, 'workers')
    .exec();
  const [last] = (reply?.[0]?.[1] ?? []) as [string, string[]][];
  const groups = (reply?.[1]?.[1] ?? []) as (string | number)[][];
  const workers = groups.map((g) => Object.fromEntries(pairs(g))).find((g) => g.name === 'workers');
  const lastDelivered = String(workers?.['last-delivered-id'] ?? '0-0');
  const summary = reply?.[2]?.[1] as [number, string | null, string | null, [string, string][] | null] | undefined;
  const pending = Object.fromEntries((summary?.[3] ?? []).map(([consumer, count]) => [consumer, Number(count)]));
  return { taken: last === undefined || compareIds(lastDelivered, last[0]) >= 0, pending };
}

function pairs(flat: (string | number)[]): [string, string | number][] {
  const out: [string, string | number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]!]);
  return out;
}
