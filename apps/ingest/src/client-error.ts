/**
 * Answers requests that break HTTP itself before fastify's router sees them (headers too
 * large, bad framing, a header timeout) with the same coded JSON body as every other error,
 * instead of node's or fastify's own shapes.
 */
import type { Socket } from 'node:net';

const CODES: Record<number, [code: string, message: string]> = {
  400: ['INGEST_MALFORMED_REQUEST', 'the request is not valid HTTP'],
  408: ['INGEST_REQUEST_TIMEOUT', 'the request took too long to arrive'],
  413: ['INGEST_PAYLOAD_TOO_LARGE', 'the request is too large'],
  431: ['INGEST_HEADERS_TOO_LARGE', 'the request headers are too large'],
};

/** fastify's `clientErrorHandler`: one coded answer, then the connection is closed. */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const [code, message] = CODES[status] ?? CODES[400]!;
  const body = JSON.stringify({ code, message });
  const reason = {
    400: 'Bad Request',
    408: 'Request Timeout',
    413: 'Payload Too Large',
    431: 'Request Header Fields Too Large',
  }[status];
  // Write and close at once (as fastify's own handler does): a slow or broken client must not
  // keep the socket open by never reading or never closing its side.
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroy();
}
