/**
 * The ingest side of the baselines: the same protocol as reseq's ingest, so the same producer
 * drives every system. `POST /v1/messages` with `{ destination, payload, id? }` answers `202`
 * `{ id, sequences: { <destination>: n } }` once `enqueue` resolved; over TCP each line gets its
 * reply line, in order. The sequence is the front's own per-destination counter, assigned in
 * arrival order before `enqueue` is called, so it is the order the queue received them in.
 * Errors are JSON `{ code, message }` (400 BENCH_BAD_REQUEST, 404 BENCH_UNKNOWN_DESTINATION,
 * 503 BENCH_ENQUEUE_FAILED).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { LineSplitter } from '@reseq/delivery';

/** One accepted message, as the queue gets it. */
export interface FrontMessage {
  destination: string;
  sequence: number;
  id: string;
  payload: unknown;
}

/** Options of {@link startFront}. */
export interface FrontOptions {
  destinations: readonly string[];
  enqueue: (message: FrontMessage) => Promise<void>;
  httpPort: number;
  tcpPort: number;
}

/** A running front. */
export interface Front {
  httpPort: number;
  tcpPort: number;
  close(): Promise<void>;
}

type Outcome = { status: number; body: Record<string, unknown> };

/** Starts the HTTP and TCP listeners. */
export async function startFront(options: FrontOptions): Promise<Front> {
  const known = new Set(options.destinations);
  const sequences = new Map<string, number>();
  let generated = 0;

  const accept = async (text: string): Promise<Outcome> => {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return error(400, 'BENCH_BAD_REQUEST', 'the body is not JSON');
    }
    const { destination, payload, id } = (body ?? {}) as { destination?: unknown; payload?: unknown; id?: unknown };
    if (typeof destination !== 'string' || payload === undefined || (id !== undefined && typeof id !== 'string')) {
      return error(400, 'BENCH_BAD_REQUEST', 'expected { destination: string, payload, id?: string }');
    }
    if (!known.has(destination)) return error(404, 'BENCH_UNKNOWN_DESTINATION', `unknown destination ${destination}`);
    const sequence = (sequences.get(destination) ?? 0) + 1;
    sequences.set(destination, sequence);
    const messageId = id ?? `front-${++generated}`;
    try {
      await options.enqueue({ destination, sequence, id: messageId, payload });
    } catch (err) {
      return error(503, 'BENCH_ENQUEUE_FAILED', err instanceof Error ? err.message : String(err));
    }
    return { status: 202, body: { id: messageId, sequences: { [destination]: sequence } } };
  };

  const http: HttpServer = createHttpServer({ keepAlive: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer = (outcome: Outcome): void => {
        res.writeHead(outcome.status, { 'content-type': 'application/json' }).end(JSON.stringify(outcome.body));
      };
      if (req.method !== 'POST' || req.url !== '/v1/messages') {
        answer(error(404, 'BENCH_NOT_FOUND', 'only POST /v1/messages'));
        return;
      }
      void accept(Buffer.concat(chunks).toString('utf8')).then(answer);
    });
  });
  http.keepAliveTimeout = 60_000;

  const sockets = new Set<Socket>();
  const tcp: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const splitter = new LineSplitter();
    // Replies go out in line order: each line's slot is filled when it settles.
    const slots: { reply: string | undefined }[] = [];
    let head = 0;
    const flush = (): void => {
      let out = '';
      while (head < slots.length && slots[head]!.reply !== undefined) out += slots[head++]!.reply;
      if (head > 1024 && head * 2 > slots.length) {
        slots.splice(0, head);
        head = 0;
      }
      if (out !== '' && !socket.destroyed) socket.write(out);
    };
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {
      // The client went away: 'close' follows.
    });
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const line of lines) {
        if (line.trim() === '') continue;
        const slot: { reply: string | undefined } = { reply: undefined };
        slots.push(slot);
        void accept(line).then((outcome) => {
          const reply =
            outcome.status === 202
              ? { ok: true, ...outcome.body }
              : { ok: false, status: outcome.status, ...outcome.body };
          slot.reply = `${JSON.stringify(reply)}\n`;
          flush();
        });
      }
    });
  });

  const httpPort = await listen(http, options.httpPort);
  const tcpPort = await listen(tcp, options.tcpPort);
  return {
    httpPort,
    tcpPort,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      http.closeAllConnections();
      await Promise.all([
        new Promise<void>((resolve) => http.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

function error(status: number, code: string, message: string): Outcome {
  return { status, body: { code, message } };
}

async function listen(server: HttpServer | TcpServer, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
