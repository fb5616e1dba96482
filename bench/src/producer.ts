/**
 * The client of a run: sends messages `{ destination, id, payload }` to the system's ingest over
 * HTTP (keep-alive, many connections) or TCP (newline JSON, pipelined over a few connections),
 * at an even pace or as fast as it goes with a bounded number outstanding (closed loop). Each
 * acceptance (202, or an `ok` reply line) is recorded with the destination sequence the system
 * answered and the time it arrived. 429 and 503 answers and lost connections are retried with
 * the same `id`; other refusals are final and counted.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineSplitter } from '@reseq/delivery';
import { Pool } from 'undici';
import { payloadOf, type PlannedMessage } from './plan.js';
import { now, type Recorder } from './recorder.js';
import type { LoadShape } from './scenarios.js';

/** Options of {@link runProducer}. */
export interface ProducerOptions {
  protocol: 'http' | 'tcp';
  httpPort: number;
  tcpPort: number;
  destinations: readonly string[];
  plan: (k: number) => PlannedMessage;
  load: LoadShape;
  durationMs: number;
  connections: number;
  recorder: Recorder;
}

/** What the producer did besides what the recorder holds. */
export interface ProducerStats {
  requests: number;
  retries: { status429: number; status503: number; connection: number };
  /** When the production window began and ended (ms since the epoch). */
  startedAt: number;
  endedAt: number;
}

const RETRY_MS = 100;
const MAX_CONNECTION_RETRIES = 50;

/** The answer to one message, as far as the producer cares. */
type Answer =
  | { kind: 'accepted'; sequence: number }
  | { kind: 'retry'; status: 429 | 503 | 'connection' }
  | { kind: 'refused'; reason: string };

interface Transport {
  send(body: string, destination: string): Promise<Answer>;
  close(): Promise<void>;
}

/** Runs the production window, then waits until every request has its final answer. */
export async function runProducer(options: ProducerOptions): Promise<ProducerStats> {
  const transport = options.protocol === 'http' ? httpTransport(options) : await tcpTransport(options);
  const stats: ProducerStats = {
    requests: 0,
    retries: { status429: 0, status503: 0, connection: 0 },
    startedAt: now(),
    endedAt: 0,
  };
  const { recorder, destinations } = options;
  let pending = 0;
  let allAnswered: (() => void) | undefined;

  const send = (k: number): void => {
    const planned = options.plan(k);
    const destination = destinations[planned.destination]!;
    recorder.sent(k, planned.destination, planned.ms);
    const body = JSON.stringify({ destination, id: `b-${k}`, payload: payloadOf(planned) });
    pending++;
    void (async () => {
      for (let attempt = 1; ; attempt++) {
        stats.requests++;
        const answer = await transport.send(body, destination);
        if (answer.kind === 'accepted') {
          recorder.accepted(k, now(), answer.sequence);
          break;
        }
        if (answer.kind === 'refused') {
          recorder.refused(answer.reason);
          break;
        }
        if (answer.status === 429) stats.retries.status429++;
        else if (answer.status === 503) stats.retries.status503++;
        else stats.retries.connection++;
        if (answer.status === 'connection' && attempt >= MAX_CONNECTION_RETRIES) {
          recorder.refused('connection lost');
          break;
        }
        await sleep(RETRY_MS * (0.5 + Math.random()));
      }
      pending--;
      if (pending === 0) allAnswered?.();
    })();
  };

  stats.startedAt = now();
  const end = stats.startedAt + options.durationMs;
  let next = 0;
  if (options.load.kind === 'rate') {
    const gap = 1000 / options.load.perSecond;
    const total = Math.ceil(options.durationMs / gap);
    while (next < total) {
      const due = Math.min(total, Math.floor((now() - stats.startedAt) / gap) + 1);
      while (next < due) send(next++);
      const wait = stats.startedAt + next * gap - now();
      if (next < total && wait > 0) await sleep(wait);
    }
  } else {
    const outstanding = options.load.outstanding;
    await new Promise<void>((resolve) => {
      let scheduled = false;
      const pump = (): void => {
        scheduled = false;
        if (now() >= end) {
          recorder.onProgress = undefined;
          clearInterval(ticker);
          resolve();
          return;
        }
        while (recorder.outstanding() < outstanding) send(next++);
      };
      recorder.onProgress = () => {
        if (scheduled) return;
        scheduled = true;
        setImmediate(pump);
      };
      const ticker = setInterval(pump, 5);
      pump();
    });
  }
  stats.endedAt = now();
  if (pending > 0) await new Promise<void>((resolve) => (allAnswered = resolve));
  await transport.close();
  return stats;
}

/** Reads an ingest answer body (HTTP 202 body or TCP reply line). */
export function readAnswer(status: number, text: string, destination: string): Answer {
  let body: { sequences?: Record<string, unknown>; code?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Checked below: no sequence.
  }
  if (status === 202) {
    const sequence = body.sequences?.[destination];
    if (typeof sequence === 'number' && Number.isSafeInteger(sequence) && sequence > 0) {
      return { kind: 'accepted', sequence };
    }
    return { kind: 'refused', reason: `202 without a sequence for ${destination}` };
  }
  if (status === 429 || status === 503) return { kind: 'retry', status };
  return { kind: 'refused', reason: `${status} ${typeof body.code === 'string' ? body.code : ''}`.trim() };
}

function httpTransport(options: ProducerOptions): Transport {
  const pool = new Pool(`http://127.0.0.1:${options.httpPort}`, {
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
  });
  return {
    async send(body, destination) {
      try {
        const response = await pool.request({
          method: 'POST',
          path: '/v1/messages',
          headers: { 'content-type': 'application/json' },
          body,
        });
        return readAnswer(response.statusCode, await response.body.text(), destination);
      } catch {
        return { kind: 'retry', status: 'connection' };
      }
    },
    close: () => pool.close(),
  };
}

/** One pipelined ingest connection: reply lines come in the order the lines were written. */
class IngestConnection {
  readonly #socket: Socket;
  readonly #splitter = new LineSplitter();
  readonly #waiting: { destination: string; resolve: (answer: Answer) => void }[] = [];
  #head = 0;
  #corked = false;
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => this.#fail());
    socket.on('close', () => this.#fail());
  }

  static async open(port: number): Promise<IngestConnection> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new IngestConnection(socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(line: string, destination: string): Promise<Answer> {
    if (this.#closed) return Promise.resolve({ kind: 'retry', status: 'connection' });
    return new Promise((resolve) => {
      this.#waiting.push({ destination, resolve });
      // Lines of one event-loop turn leave in one write.
      if (!this.#corked) {
        this.#corked = true;
        this.#socket.cork();
        process.nextTick(() => {
          this.#corked = false;
          this.#socket.uncork();
        });
      }
      this.#socket.write(line);
    });
  }

  close(): void {
    this.#socket.end();
  }

  #onData(chunk: Buffer): void {
    for (const text of this.#splitter.push(chunk)) {
      if (text.trim() === '') continue;
      const waiter = this.#waiting[this.#head++];
      if (!waiter) continue;
      let reply: { ok?: unknown; status?: unknown } = {};
      try {
        reply = JSON.parse(text) as typeof reply;
      } catch {
        // Refused below.
      }
      const status = reply.ok === true ? 202 : typeof reply.status === 'number' ? reply.status : 0;
      waiter.resolve(readAnswer(status, text, waiter.destination));
    }
    if (this.#head > 4096 && this.#head * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #fail(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let i = this.#head; i < this.#waiting.length; i++)
      this.#waiting[i]!.resolve({ kind: 'retry', status: 'connection' });
    this.#waiting.length = 0;
    this.#head = 0;
  }
}

async function tcpTransport(options: ProducerOptions): Promise<Transport> {
  const connections = await Promise.all(
    Array.from({ length: options.connections }, () => IngestConnection.open(options.tcpPort)),
  );
  let turn = 0;
  return {
    async send(body, destination) {
      for (let i = 0; i < connections.length; i++) {
        const index = turn++ % connections.length;
        let connection = connections[index]!;
        if (connection.closed) {
          try {
            connections[index] = connection = await IngestConnection.open(options.tcpPort);
          } catch {
            continue;
          }
        }
        return connection.send(`${body}\n`, destination);
      }
      return { kind: 'retry', status: 'connection' };
    },
    close() {
      for (const connection of connections) connection.close();
      return Promise.resolve();
    },
  };
}
