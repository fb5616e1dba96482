/**
 * TCP delivery: one connection per destination, one line per message, up to `window` lines in
 * flight, answered by `{"ack":n}` lines (an ack for n also acknowledges every sequence below
 * n). Any failure (connect, lost connection, ack timeout, `mayWrite` saying no, a bad ack line)
 * ends the connection and fails every outstanding send as retryable; the lane starts again from
 * its first unrecorded sequence on a new connection, so one connection never carries a lower
 * sequence after a higher one.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TcpDestinationConfig } from '@reseq/config';
import type { Delivery, DeliveryOutcome, DeliveryRequest } from './delivery.js';
import { encodeMessageLine, LineSplitter, parseAckLine } from './tcp-framing.js';

/** A send waiting on a connection, first to be written, then to be acknowledged. */
interface PendingSend {
  request: DeliveryRequest;
  mayWrite: (() => boolean) | undefined;
  resolve: (outcome: DeliveryOutcome) => void;
  writtenAt: number;
}

/** One connection's life: connect, write in order, take acks, fail everything at the end. */
class Connection {
  readonly #socket: Socket;
  readonly #splitter = new LineSplitter(64 * 1024);
  readonly #unwritten: PendingSend[] = [];
  readonly #unacked: PendingSend[] = [];
  readonly #signals = new Set<AbortSignal>();
  readonly #onAbort = (): void => this.fail('aborted');
  #open = false;
  #closed = false;
  /** Lines of this tick not yet handed to the socket. */
  #outgoing = '';
  /** The connect timeout, then the ack watchdog (see #arm). */
  #timer: NodeJS.Timeout | undefined;
  /** The last sequence queued on this connection (0 before the first). */
  lastQueued = 0;

  constructor(
    private readonly config: TcpDestinationConfig,
    private readonly ca: Buffer | undefined,
    private readonly onClosed: (connection: Connection) => void,
  ) {
    const { host, port, tls } = config;
    this.#socket = tls
      ? tlsConnect({
          host,
          port,
          ca: ca,
          servername: tls.serverName ?? host,
          rejectUnauthorized: tls.rejectUnauthorized,
        })
      : netConnect({ host, port });
    this.#socket.setNoDelay(true);
    this.#socket.once(tls ? 'secureConnect' : 'connect', () => {
      this.#open = true;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      for (let send = this.#unwritten.shift(); send; send = this.#unwritten.shift()) if (!this.#write(send)) return;
      this.#arm();
    });
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('error', (err) => this.fail(`${err.name}: ${err.message}`));
    this.#socket.on('close', () => this.fail('connection closed by the receiver'));
    this.#arm();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues one send; written at once when connected. */
  add(send: PendingSend, signal: AbortSignal | undefined): void {
    if (signal && !this.#signals.has(signal)) {
      this.#signals.add(signal);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    this.lastQueued = send.request.sequence;
    if (!this.#open) this.#unwritten.push(send);
    else if (this.#write(send)) this.#arm();
  }

  /** Ends the connection: every outstanding send fails, retryable, with `error`. */
  fail(error: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const signal of this.#signals) signal.removeEventListener('abort', this.#onAbort);
    this.#socket.destroy();
    this.onClosed(this);
    for (const send of [...this.#unacked.splice(0), ...this.#unwritten.splice(0)])
      send.resolve({ ok: false, retryable: true, error });
  }

  #write(send: PendingSend): boolean {
    // The lease check at the last moment (see Delivery.send): a refusal leaves a hole, so
    // nothing after it may go on this connection either.
    if (send.mayWrite && !send.mayWrite()) {
      this.#unwritten.unshift(send);
      this.fail('not sent: mayWrite said no');
      return false;
    }
    let line: string;
    try {
      line = encodeMessageLine(send.request);
    } catch (err) {
      send.resolve({ ok: false, retryable: false, error: `payload is not JSON: ${String(err)}` });
      this.fail('previous payload was not JSON');
      return false;
    }
    send.writtenAt = performance.now();
    this.#unacked.push(send);
    this.#queueLine(line);
    return true;
  }

  /** Lines written in one tick (a window's worth) leave in one write, not one each. */
  #queueLine(line: string): void {
    if (this.#outgoing !== '') {
      this.#outgoing += line;
      return;
    }
    this.#outgoing = line;
    process.nextTick(() => {
      const out = this.#outgoing;
      this.#outgoing = '';
      if (!this.#closed) this.#socket.write(out);
    });
  }

  #onData(chunk: Buffer): void {
    let lines: string[];
    try {
      lines = this.#splitter.push(chunk);
    } catch {
      return this.fail('receiver sent a line too long');
    }
    for (const line of lines) {
      if (line.trim() === '') continue;
      const ack = parseAckLine(line);
      if (ack === undefined) return this.fail(`receiver sent a line that is no ack: ${line.slice(0, 100)}`);
      // Cumulative: an ack for n takes every sequence up to n. An ack for nothing outstanding
      // (a repeat) changes nothing.
      let taken = 0;
      while (taken < this.#unacked.length && this.#unacked[taken]!.request.sequence <= ack) taken++;
      for (const send of this.#unacked.splice(0, taken)) send.resolve({ ok: true });
    }
    this.#arm();
  }

  /**
   * Times the connect, then the oldest unacknowledged line. One timer watches the acks: armed for
   * the oldest line's deadline when there is none, it looks again when it fires (the oldest may
   * have been acknowledged meanwhile) instead of being made again for every line and every ack.
   */
  #arm(): void {
    if (this.#closed) return;
    if (!this.#open) {
      clearTimeout(this.#timer);
      const timeoutMs = this.config.timeoutMs;
      this.#timer = setTimeout(() => this.fail(`connect timed out after ${timeoutMs} ms`), timeoutMs);
      return;
    }
    if (this.#timer === undefined && this.#unacked.length > 0) this.#watchAcks();
  }

  #watchAcks(): void {
    const timeoutMs = this.config.timeoutMs;
    const oldest = this.#unacked[0];
    if (this.#closed || !oldest) {
      this.#timer = undefined;
      return;
    }
    const left = oldest.writtenAt + timeoutMs - performance.now();
    if (left <= 0) {
      this.#timer = undefined;
      this.fail(`no ack within ${timeoutMs} ms`);
      return;
    }
    this.#timer = setTimeout(() => this.#watchAcks(), left);
  }
}

/** Delivers to one TCP destination. */
export class TcpDelivery implements Delivery {
  readonly window: number;
  readonly #config: TcpDestinationConfig;
  readonly #ca: Buffer | undefined;
  #connection: Connection | undefined;

  /** @throws when `tls.caFile` cannot be read. */
  constructor(config: TcpDestinationConfig) {
    this.#config = config;
    this.window = config.window;
    this.#ca = config.tls?.caFile ? readFileSync(config.tls.caFile) : undefined;
  }

  /**
   * Queues one line on the connection (opening one where there is none) and resolves once it
   * is acknowledged, or fails (retryable) once the connection fails. A sequence that does not
   * follow the last one written on the connection starts a new connection, so a restart never
   * sends a lower sequence after a higher one on the same connection.
   */
  send(request: DeliveryRequest, signal?: AbortSignal, mayWrite?: () => boolean): Promise<DeliveryOutcome> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve({ ok: false, retryable: true, error: 'aborted' });
      let connection = this.#connection;
      if (connection && connection.lastQueued !== 0 && request.sequence !== connection.lastQueued + 1) {
        connection.fail('restarting from an earlier sequence');
        connection = undefined;
      }
      if (!connection || connection.closed) {
        connection = new Connection(this.#config, this.#ca, (closed) => {
          if (this.#connection === closed) this.#connection = undefined;
        });
        this.#connection = connection;
      }
      connection.add({ request, mayWrite, resolve, writtenAt: 0 }, signal);
    });
  }

  close(): Promise<void> {
    this.#connection?.fail('delivery closed');
    this.#connection = undefined;
    return Promise.resolve();
  }
}
