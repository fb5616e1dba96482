/**
 * The reference receiver of delivery over TCP: it parses message lines, takes each
 * (destination, sequence) once (a sequence at or below the last one taken is a repeat after a
 * reconnect, acknowledged again and otherwise ignored), acknowledges what it took, and keeps
 * what it received for whoever embeds it (the tests, the demo). See docs/protocol.md.
 */
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { encodeAckLine, LineSplitter, parseMessageLine, type TcpMessageLine } from './tcp-framing.js';

/** One message line as it arrived. */
export interface ReceivedLine extends TcpMessageLine {
  /** Which connection it came on (1, 2, … in the order they were accepted). */
  connection: number;
  /** False for a repeat of a sequence already taken. */
  taken: boolean;
  /** Lines of its connection waiting for their ack when it arrived, itself included. */
  waitingForAck: number;
  receivedAt: number;
}

/** Options of {@link startTcpReceiver}. */
export interface TcpReceiverOptions {
  /** Port to listen on (default 0: any free port). */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** TLS key and certificate; absent means plain TCP. */
  tls?: TlsOptions;
  /**
   * Acknowledge once this many lines of a connection wait (default 1: each line at once). With
   * more, the lines that wait are acknowledged together after `ackDelayMs` at the latest.
   */
  ackBatch?: number;
  /** Longest wait of an unacknowledged line in a batch, in ms (default 5). */
  ackDelayMs?: number;
  /** Acknowledge a batch with one ack of its highest sequence instead of one ack per line. */
  cumulativeAcks?: boolean;
  /** Called for every message line as it arrives (after de-duplication). */
  onLine?: (line: ReceivedLine) => void;
}

/** A running receiver. */
export interface TcpReceiver {
  port: number;
  /** Every message line, in arrival order (repeats included). */
  received: ReceivedLine[];
  /** The messages taken, per destination in order, without repeats. */
  taken(destination: string): ReceivedLine[];
  /** Connections accepted so far. */
  connections: number;
  /** While true, lines are taken but not acknowledged (their acks go out once it is false). */
  holdAcks: boolean;
  /** Cuts every open connection (the sender sees a lost connection). */
  dropConnections(): void;
  close(): Promise<void>;
}

/** Starts a receiver; resolves once it listens. */
export async function startTcpReceiver(options: TcpReceiverOptions = {}): Promise<TcpReceiver> {
  const ackBatch = Math.max(1, options.ackBatch ?? 1);
  const ackDelayMs = options.ackDelayMs ?? 5;
  const sockets = new Set<Socket>();
  const last = new Map<string, number>();
  const taken = new Map<string, ReceivedLine[]>();
  const flushers = new Set<() => void>();
  let holdAcks = false;

  const receiver: TcpReceiver = {
    port: 0,
    received: [],
    taken: (destination) => taken.get(destination) ?? [],
    connections: 0,
    get holdAcks() {
      return holdAcks;
    },
    set holdAcks(value: boolean) {
      holdAcks = value;
      if (!value) for (const flush of flushers) flush();
    },
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };

  const onConnection = (socket: Socket): void => {
    const connection = ++receiver.connections;
    sockets.add(socket);
    const splitter = new LineSplitter();
    let waiting: number[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (holdAcks || waiting.length === 0 || socket.destroyed) return;
      const acks = options.cumulativeAcks ? [Math.max(...waiting)] : waiting;
      socket.write(acks.map(encodeAckLine).join(''));
      waiting = [];
    };
    flushers.add(flush);
    socket.on('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
      flushers.delete(flush);
    });
    socket.on('error', () => {
      // A reset by the sender: 'close' follows.
    });
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const text of lines) {
        if (text.trim() === '') continue;
        const message = parseMessageLine(text);
        if (!message) {
          // Not the protocol: nothing sensible can be acknowledged any more.
          socket.destroy();
          return;
        }
        const isNew = message.sequence > (last.get(message.destination) ?? 0);
        const line: ReceivedLine = {
          ...message,
          connection,
          taken: isNew,
          waitingForAck: waiting.length + 1,
          receivedAt: Date.now(),
        };
        if (isNew) {
          last.set(message.destination, message.sequence);
          let list = taken.get(message.destination);
          if (!list) taken.set(message.destination, (list = []));
          list.push(line);
        }
        receiver.received.push(line);
        options.onLine?.(line);
        if (socket.destroyed) return;
        waiting.push(message.sequence);
      }
      if (waiting.length >= ackBatch) flush();
      else if (waiting.length > 0) timer ??= setTimeout(flush, ackDelayMs);
    });
  };

  const server: Server = options.tls ? createTlsServer(options.tls, onConnection) : createNetServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  receiver.port = (server.address() as AddressInfo).port;
  return receiver;
}
