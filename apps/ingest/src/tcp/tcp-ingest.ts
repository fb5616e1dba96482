/**
 * TCP ingest (contract "Ingest over TCP"): a plain or TLS server on TCP_PORT whose connections
 * (tcp-connection.ts) hand each line to the same intake as HTTP. Connections past
 * `ingest.maxConnections` get one 503 line and are closed; on stop, the server stops accepting,
 * answers what is in flight and closes every connection.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Logger } from '@reseq/runtime';
import type { Counter } from 'prom-client';
import type { MessageIntake } from '../accept-message.js';
import type { Authenticator } from '../authenticator.js';
import { TooManyConnectionsError } from '../errors.js';
import { TcpConnection } from './tcp-connection.js';

/** Options of {@link startTcpIngest}. */
export interface TcpIngestOptions {
  port: number;
  intake: MessageIntake;
  authenticator: Authenticator;
  rejected: Counter<'code' | 'source'>;
  logger: Logger;
  maxMessageBytes: number;
  maxConnections: number;
  maxPending: number;
  idleTimeoutMs: number;
  isStopping: () => boolean;
  /** Serve TLS with these (cert, key, ca) instead of plain TCP. */
  tls?: TlsOptions;
  /** How long stop() waits for connections to flush their replies before dropping them, in ms. */
  shutdownGraceMs?: number;
}

/** A listening TCP ingest. */
export interface TcpIngest {
  port: number;
  /** Stops accepting, answers in-flight lines, closes every connection. */
  stop(): Promise<void>;
}

/** Starts TCP ingest and resolves once it listens. */
export async function startTcpIngest(options: TcpIngestOptions): Promise<TcpIngest> {
  const logger = options.logger;
  const connections = new Set<TcpConnection>();
  const sockets = new Set<Socket>();

  const onSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (connections.size >= options.maxConnections || options.isStopping()) {
      const error = new TooManyConnectionsError(options.maxConnections);
      options.rejected.inc({ code: error.code, source: 'unauthenticated' });
      socket.on('error', () => undefined);
      socket.end(
        `${JSON.stringify({ ok: false, status: error.statusCode, code: error.code, message: error.message })}\n`,
      );
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const connection = new TcpConnection(socket, {
      intake: options.intake,
      authenticator: options.authenticator,
      rejected: options.rejected,
      logger,
      maxMessageBytes: options.maxMessageBytes,
      maxPending: options.maxPending,
      idleTimeoutMs: options.idleTimeoutMs,
      isStopping: options.isStopping,
      onClose: () => connections.delete(connection),
    });
    connections.add(connection);
  };

  let server: Server;
  if (options.tls) {
    server = createTlsServer({ ...options.tls, allowHalfOpen: true }, onSocket);
    server.on('tlsClientError', (err) => logger.debug({ err }, 'tls handshake failed'));
  } else {
    server = createServer({ allowHalfOpen: true }, onSocket);
  }
  server.on('error', (err) => logger.error({ err }, 'tcp ingest server error'));
  server.listen(options.port, '0.0.0.0');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ port, tls: options.tls !== undefined }, 'tcp ingest listening');

  return {
    port,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const connection of connections) connection.shutdown();
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, options.shutdownGraceMs ?? 10_000);
      await closed;
      clearTimeout(grace);
    },
  };
}
