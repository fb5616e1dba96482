/**
 * How the BullMQ and groupmq workers deliver: what a user of those queues would write, with
 * the same headers and lines reseq's sender uses, so the sinks see the same traffic. HTTP:
 * `POST` of the payload through a keep-alive pool with as many connections as the worker runs
 * jobs. TCP: one connection per destination, the contract's message line, resolved by the
 * receiver's `{"ack":n}` for that sequence (acks may come in any order here, since these queues
 * deliver out of order). Any failure throws, and the queue retries the job.
 */
import { connect, type Socket } from 'node:net';
import { encodeMessageLine, LineSplitter, parseAckLine } from '@reseq/delivery';
import { Pool } from 'undici';

/** A destination, as in reseq's config file. */
export type SinkTarget = { type: 'http'; url: string } | { type: 'tcp'; host: string; port: number };

/** One message to deliver. */
export interface SinkMessage {
  destination: string;
  sequence: number;
  id: string;
  /** The transformed payload as JSON text. */
  payload: string;
}

/** Delivers to every destination of a run. */
export interface SinkClient {
  deliver(message: SinkMessage): Promise<void>;
  close(): Promise<void>;
}

const TIMEOUT_MS = 10_000;

/** A client for `targets` (destination name -> target); `connections`: HTTP connections per origin. */
export function createSinkClient(targets: Record<string, SinkTarget>, connections: number): SinkClient {
  const pools = new Map<string, Pool>();
  const lines = new Map<string, LineConnection>();
  return {
    async deliver(message) {
      const target = targets[message.destination];
      if (!target) throw new Error(`no target for destination ${message.destination}`);
      if (target.type === 'http') {
        const url = new URL(target.url);
        let pool = pools.get(url.origin);
        if (!pool) {
          pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
          pools.set(url.origin, pool);
        }
        const response = await pool.request({
          method: 'POST',
          path: `${url.pathname}${url.search}`,
          headers: {
            'content-type': 'application/json',
            'idempotency-key': `${message.destination}:${message.sequence}:${message.id}`,
            'reseq-sequence': String(message.sequence),
            'reseq-message-id': message.id,
          },
          body: message.payload,
          headersTimeout: TIMEOUT_MS,
          bodyTimeout: TIMEOUT_MS,
        });
        await response.body.dump();
        if (response.statusCode < 200 || response.statusCode >= 300) throw new Error(`HTTP ${response.statusCode}`);
        return;
      }
      let line = lines.get(message.destination);
      if (!line || line.closed) {
        line = new LineConnection(target.host, target.port);
        lines.set(message.destination, line);
      }
      await line.send(message);
    },
    async close() {
      for (const line of lines.values()) line.close();
      await Promise.all([...pools.values()].map((pool) => pool.close()));
    },
  };
}

/** One TCP connection to a receiver; sends resolve on the ack of their own sequence. */
class LineConnection {
  readonly #socket: Socket;
  readonly #splitter = new LineSplitter(64 * 1024);
  readonly #waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }[]>();
  #closed = false;

  constructor(host: string, port: number) {
    this.#socket = connect({ host, port });
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('error', (err) => this.#fail(err));
    this.#socket.on('close', () => this.#fail(new Error('connection closed by the receiver')));
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: SinkMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new Error('connection closed'));
      const timer = setTimeout(() => this.#fail(new Error(`no ack within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const list = this.#waiting.get(message.sequence);
      if (list) list.push(waiter);
      else this.#waiting.set(message.sequence, [waiter]);
      this.#socket.write(encodeMessageLine({ ...message, messageId: message.id }));
    });
  }

  close(): void {
    this.#fail(new Error('client closed'));
  }

  #onData(chunk: Buffer): void {
    let texts: string[];
    try {
      texts = this.#splitter.push(chunk);
    } catch (err) {
      return this.#fail(err as Error);
    }
    for (const text of texts) {
      if (text.trim() === '') continue;
      const ack = parseAckLine(text);
      if (ack === undefined) return this.#fail(new Error(`not an ack: ${text.slice(0, 100)}`));
      const list = this.#waiting.get(ack);
      const waiter = list?.shift();
      if (list?.length === 0) this.#waiting.delete(ack);
      waiter?.resolve();
    }
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    for (const list of this.#waiting.values()) for (const waiter of list) waiter.reject(err);
    this.#waiting.clear();
  }
}
