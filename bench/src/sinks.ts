/**
 * The destinations of a run, in the harness process: an HTTP sink (destination `i` at
 * `/d/<i>`) and a TCP sink (the contract's delivery over TCP: one JSON line per message,
 * answered `{"ack":<sequence>}` at once). Both record each message's index `k` from its payload
 * and the receive time. An HTTP body may be one payload or, for batched delivery, an array whose
 * elements are `{"sequence":n,"id":"...","payload":...}`; each element is recorded.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { encodeAckLine, LineSplitter, parseMessageLine } from '@reseq/delivery';
import { now, type Recorder } from './recorder.js';

/** A running sink. */
export interface Sink {
  /** The destination config (reseq's file format) of destination `index`. */
  destination(index: number): { type: 'http'; url: string } | { type: 'tcp'; host: string; port: number };
  close(): Promise<void>;
}

/** The message index of a delivered payload (or of a batch element wrapping one). */
export function messageIndexOf(item: unknown): unknown {
  if (item === null || typeof item !== 'object') return undefined;
  const record = item as { k?: unknown; payload?: unknown };
  if (record.k !== undefined) return record.k;
  const payload = record.payload;
  return payload !== null && typeof payload === 'object' ? (payload as { k?: unknown }).k : undefined;
}

/** Starts the HTTP sink on a free port. */
export async function startHttpSink(recorder: Recorder): Promise<Sink> {
  const server: HttpServer = createHttpServer({ keepAlive: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = now();
      const match = /^\/d\/(\d+)$/.exec(req.url ?? '');
      const destination = match ? Number(match[1]) : undefined;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        recorder.received(undefined, destination, at);
        res.writeHead(400).end();
        return;
      }
      for (const item of Array.isArray(body) ? body : [body]) recorder.received(messageIndexOf(item), destination, at);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 60_000;
  const port = await listen(server);
  return {
    destination: (index) => ({ type: 'http', url: `http://127.0.0.1:${port}/d/${index}` }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Starts the TCP sink on a free port; `names` maps destination names to indexes. */
export async function startTcpSink(recorder: Recorder, names: readonly string[]): Promise<Sink> {
  const indexOf = new Map(names.map((name, i) => [name, i]));
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const splitter = new LineSplitter();
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {
      // A reset by the sender: 'close' follows.
    });
    socket.on('data', (chunk: Buffer) => {
      const at = now();
      let acks = '';
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const text of lines) {
        if (text.trim() === '') continue;
        const line = parseMessageLine(text);
        if (!line) {
          recorder.received(undefined, undefined, at);
          socket.destroy();
          return;
        }
        recorder.received(messageIndexOf(line.payload), indexOf.get(line.destination), at);
        acks += encodeAckLine(line.sequence);
      }
      if (acks !== '') socket.write(acks);
    });
  });
  const port = await listen(server);
  return {
    destination: () => ({ type: 'tcp', host: '127.0.0.1', port }),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function listen(server: HttpServer | TcpServer): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
