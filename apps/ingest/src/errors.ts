/**
 * Error catalogue of ingest: every answer other than 202 carries one of these codes.
 * Redis-side codes (REDIS_UNAVAILABLE, BACKLOG_FULL) come from @reseq/store.
 */
import { ReseqError } from '@reseq/runtime';

/** `INGEST_MALFORMED_JSON` (400): the body is not JSON. */
export class MalformedJsonError extends ReseqError {
  override readonly name = 'MalformedJsonError';
  constructor(cause?: unknown) {
    super('INGEST_MALFORMED_JSON', 'the request body is not valid JSON', { statusCode: 400, cause });
  }
}

/** `INGEST_INVALID_BODY` (400): JSON, but not a message (missing or wrong fields). */
export class InvalidBodyError extends ReseqError {
  override readonly name = 'InvalidBodyError';
  constructor(detail: string) {
    super('INGEST_INVALID_BODY', `invalid message: ${detail}`, { statusCode: 400, context: { detail } });
  }
}

/** `INGEST_UNKNOWN_DESTINATION` (404): a destination that is not in the config. */
export class UnknownDestinationError extends ReseqError {
  override readonly name = 'UnknownDestinationError';
  constructor(destinations: string[]) {
    super('INGEST_UNKNOWN_DESTINATION', `unknown destination: ${destinations.join(', ')}`, {
      statusCode: 404,
      context: { destinations },
    });
  }
}

/** `INGEST_PAYLOAD_TOO_LARGE` (413): the body is over `ingest.maxMessageBytes`. */
export class PayloadTooLargeError extends ReseqError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limit: number) {
    super('INGEST_PAYLOAD_TOO_LARGE', `the message is larger than the limit of ${limit} bytes`, {
      statusCode: 413,
      context: { limit },
    });
  }
}

/**
 * `DESTINATION_BACKLOG_FULL` (429, retryable): the destination already has its window of
 * messages accepted but not delivered (it is blocked or slow); retry later with the same id.
 */
export class DestinationBacklogFullError extends ReseqError {
  override readonly name = 'DestinationBacklogFullError';
  constructor(destination: string, window: number) {
    super(
      'DESTINATION_BACKLOG_FULL',
      `destination ${destination} has ${window} messages waiting for delivery; retry later with the same id`,
      { statusCode: 429, retryable: true, context: { destination, window } },
    );
  }
}

/** `INGEST_SHUTTING_DOWN` (503, retryable): ingest is stopping; retry on another instance. */
export class ShuttingDownError extends ReseqError {
  override readonly name = 'ShuttingDownError';
  constructor() {
    super('INGEST_SHUTTING_DOWN', 'ingest is shutting down; retry with the same id', {
      statusCode: 503,
      retryable: true,
    });
  }
}

/** `NOT_FOUND` (404): no such route. */
export class RouteNotFoundError extends ReseqError {
  override readonly name = 'RouteNotFoundError';
  constructor(method: string, url: string) {
    super('NOT_FOUND', `no route ${method} ${url}`, { statusCode: 404 });
  }
}

/**
 * `INGEST_UNAUTHORIZED` (401): ingest tokens are configured and the request (or the TCP
 * connection's first line) carries none, or one that no source has.
 */
export class UnauthorizedError extends ReseqError {
  override readonly name = 'UnauthorizedError';
  constructor(detail = 'a known ingest token is required') {
    super('INGEST_UNAUTHORIZED', detail, { statusCode: 401 });
  }
}

/**
 * `INGEST_RATE_LIMITED` (429, retryable): the source (or remote address) is over
 * `ingest.rateLimit`; `retryAfterSeconds` says when a message will be taken again.
 */
export class RateLimitedError extends ReseqError {
  override readonly name = 'RateLimitedError';
  constructor(retryAfterSeconds: number) {
    super('INGEST_RATE_LIMITED', `over the ingest rate limit; retry in ${retryAfterSeconds} s with the same id`, {
      statusCode: 429,
      retryable: true,
      context: { retryAfterSeconds },
    });
  }
}

/** `INGEST_TOO_MANY_CONNECTIONS` (503, retryable): a TCP connection past `ingest.maxConnections`. */
export class TooManyConnectionsError extends ReseqError {
  override readonly name = 'TooManyConnectionsError';
  constructor(limit: number) {
    super('INGEST_TOO_MANY_CONNECTIONS', `ingest already holds ${limit} TCP connections; retry later`, {
      statusCode: 503,
      retryable: true,
      context: { limit },
    });
  }
}

/** `INGEST_UNSUPPORTED_MEDIA_TYPE` (415): the Content-Type header is not a media type at all. */
export class UnsupportedMediaTypeError extends ReseqError {
  override readonly name = 'UnsupportedMediaTypeError';
  constructor(contentType: string) {
    super(
      'INGEST_UNSUPPORTED_MEDIA_TYPE',
      `"${contentType.slice(0, 100)}" is not a media type; send application/json`,
      {
        statusCode: 415,
      },
    );
  }
}

/** `INGEST_PAYLOAD_TOO_DEEP` (400): the payload nests arrays/objects deeper than the limit. */
export class PayloadTooDeepError extends ReseqError {
  override readonly name = 'PayloadTooDeepError';
  constructor(limit: number) {
    super('INGEST_PAYLOAD_TOO_DEEP', `the payload is nested deeper than ${limit} levels`, {
      statusCode: 400,
      context: { limit },
    });
  }
}
