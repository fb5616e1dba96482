/**
 * One TCP ingest connection: each line goes to the intake as soon as it is read (many in
 * flight), and the reply lines are written strictly in the order the lines came. Reading pauses
 * while too many replies are pending or the socket's write buffer is full (backpressure), and
 * resumes when they drain. With tokens configured, the first line must be `{"auth":"<token>"}`.
 */
import type { Socket } from 'node:net';
import { isReseqError, toReseqError, type Logger, type ReseqError } from '@reseq/runtime';
import type { Counter } from 'prom-client';
import type { MessageIntake, Sender } from '../accept-message.js';
import type { Authenticator } from '../authenticator.js';
import { PayloadTooLargeError, ShuttingDownError, UnauthorizedError } from '../errors.js';
import { LineReader } from './line-reader.js';
import { parseLine } from './parse-line.js';

/** Retryable answers that are expected while Redis or ingest is unavailable: not logged as errors. */
const EXPECTED_503 = new Set(['REDIS_UNAVAILABLE', 'REDIS_REPLICAS_UNAVAILABLE', 'INGEST_SHUTTING_DOWN']);

/** What a connection needs from the TCP server. */
export interface TcpConnectionOptions {
  intake: MessageIntake;
  authenticator: Authenticator;
  rejected: Counter<'code' | 'source'>;
  logger: Logger;
  maxMessageBytes: number;
  maxPending: number;
  idleTimeoutMs: number;
  isStopping: () => boolean;
  /** Called once the socket closed. */
  onClose: () => void;
}

/** A slot in the reply queue: `reply` is set once its line settled. */
interface Slot {
  reply: string | undefined;
}

/** Serves one socket. */
export class TcpConnection {
  readonly #socket: Socket;
  readonly #options: TcpConnectionOptions;
  readonly #reader: LineReader;
  readonly #queue: Slot[] = [];
  #head = 0;
  #logger: Logger;
  #sender: Sender | undefined;
  #writeBlocked = false;
  #paused = false;
  /** No more lines are read: auth failed, the client ended its side, or ingest is stopping. */
  #closing = false;
  /** A flush is due at the end of this tick (see #settle). */
  #flushDue = false;

  constructor(socket: Socket, options: TcpConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#logger = options.logger.child({ remote });
    if (!options.authenticator.enabled) this.#sender = { source: 'anonymous', rateKey: socket.remoteAddress ?? remote };
    this.#reader = new LineReader(options.maxMessageBytes, {
      line: (line) => this.#onLine(line),
      oversized: () => this.#onOversized(),
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.setTimeout(options.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.#reader.push(chunk));
    // allowHalfOpen: a client that sends its lines and ends its side still gets every reply.
    socket.on('end', () => this.#close());
    socket.on('drain', () => {
      this.#writeBlocked = false;
      this.#updateFlow();
    });
    socket.on('timeout', () => {
      this.#logger.info({ pending: this.#pending }, 'tcp connection idle; closing');
      socket.destroy();
    });
    socket.on('error', (err) => this.#logger.debug({ err }, 'tcp connection error'));
    socket.on('close', () => {
      this.#reader.close();
      options.onClose();
    });
  }

  /** Replies still owed on this connection. */
  get #pending(): number {
    return this.#queue.length - this.#head;
  }

  /** Stops reading; the connection ends once every pending reply is written. */
  shutdown(): void {
    this.#close();
  }

  /** Drops the connection at once (after the shutdown grace period). */
  destroy(): void {
    this.#socket.destroy();
  }

  #onLine(line: Buffer): void {
    if (this.#closing) return;
    if (this.#sender === undefined) {
      this.#authenticate(line);
      return;
    }
    const sender = this.#sender;
    const slot = this.#enqueue();
    if (this.#options.isStopping()) {
      this.#settle(slot, this.#errorLine(new ShuttingDownError()));
      return;
    }
    let body: unknown;
    try {
      body = parseLine(line);
    } catch (err) {
      this.#settle(slot, this.#errorLine(err));
      return;
    }
    this.#options.intake(body, sender).then(
      (accepted) => this.#settle(slot, JSON.stringify({ ok: true, id: accepted.id, sequences: accepted.sequences })),
      (err: unknown) => this.#settle(slot, this.#errorLine(err)),
    );
    this.#updateFlow();
  }

  #onOversized(): void {
    if (this.#closing) return;
    if (this.#sender === undefined) {
      this.#refuse();
      return;
    }
    this.#settle(this.#enqueue(), this.#errorLine(new PayloadTooLargeError(this.#options.maxMessageBytes)));
  }

  /** The first line where tokens are configured: `{"auth":"<token>"}` and nothing else. */
  #authenticate(line: Buffer): void {
    let token: string | undefined;
    try {
      const value = parseLine(line);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        const keys = Object.keys(value);
        const auth = (value as Record<string, unknown>).auth;
        if (keys.length === 1 && typeof auth === 'string') token = auth;
      }
    } catch {
      // Not JSON: refused below like any other first line that is not an auth line.
    }
    const source = this.#options.authenticator.sourceOf(token);
    if (source === undefined) {
      this.#refuse();
      return;
    }
    this.#sender = { source, rateKey: `source:${source}` };
    this.#logger = this.#logger.child({ source });
    this.#logger.info('tcp client authenticated');
    this.#settle(this.#enqueue(), '{"ok":true}');
  }

  /** One 401 reply, then the connection is closed. */
  #refuse(): void {
    this.#logger.warn('tcp client refused: missing or unknown ingest token');
    this.#settle(this.#enqueue(), this.#errorLine(new UnauthorizedError()));
    this.#close();
  }

  #enqueue(): Slot {
    const slot: Slot = { reply: undefined };
    this.#queue.push(slot);
    return slot;
  }

  /**
   * Records a line's reply; the replies settled in one tick leave in one write at its end. A batch
   * of lines settles in one go (one ingest script call answers them all), each through its own
   * promise: flushing on each would be a write, a syscall, per line, which was a third of TCP
   * ingest's CPU at its ceiling.
   */
  #settle(slot: Slot, reply: string): void {
    slot.reply = reply;
    if (this.#flushDue) return;
    this.#flushDue = true;
    process.nextTick(() => {
      this.#flushDue = false;
      this.#flush();
    });
  }

  /** Writes every settled reply at the head of the queue, in order. */
  #flush(): void {
    const socket = this.#socket;
    // One write (one syscall) for every reply ready now, not one per line.
    let out = '';
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.reply !== undefined) {
      out += `${this.#queue[this.#head]!.reply!}\n`;
      this.#queue[this.#head++] = undefined as unknown as Slot;
    }
    if (out !== '' && !socket.destroyed && !socket.writableEnded && !socket.write(out)) this.#writeBlocked = true;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.#closing && this.#pending === 0 && !socket.writableEnded) socket.end();
    this.#updateFlow();
  }

  #updateFlow(): void {
    const pause = this.#writeBlocked || this.#pending >= this.#options.maxPending;
    if (pause && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    } else if (!pause && this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  #close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#reader.close();
    this.#flush();
  }

  #errorLine(err: unknown): string {
    const coded: ReseqError = isReseqError(err) ? err : toReseqError(err);
    this.#options.rejected.inc({ code: coded.code, source: this.#sender?.source ?? 'unauthenticated' });
    if (coded.statusCode >= 500 && !EXPECTED_503.has(coded.code)) {
      this.#logger.error({ err }, 'tcp line failed');
    }
    return JSON.stringify({ ok: false, status: coded.statusCode, code: coded.code, message: coded.message });
  }
}
