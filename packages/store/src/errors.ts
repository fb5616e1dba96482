/**
 * Error catalogue of the store package: what can go wrong talking to Redis.
 */
import { ReseqError } from '@reseq/runtime';

/** `REDIS_UNAVAILABLE` (503, retryable): Redis did not answer or the connection is down. */
export class RedisUnavailableError extends ReseqError {
  override readonly name = 'RedisUnavailableError';
  constructor(cause?: unknown) {
    super('REDIS_UNAVAILABLE', 'Redis is unreachable; retry with the same id', {
      statusCode: 503,
      retryable: true,
      cause,
    });
  }
}

/** `REDIS_TOO_OLD`: the server lacks commands reseq needs (Redis 7.0 is the floor). */
export class RedisTooOldError extends ReseqError {
  override readonly name = 'RedisTooOldError';
  constructor(version: string) {
    super('REDIS_TOO_OLD', `Redis ${version} is too old: reseq needs Redis 7.0 or newer`, {
      context: { version },
    });
  }
}

/** `BACKLOG_FULL` (429, retryable): the input stream is over its configured backlog limit. */
export class BacklogFullError extends ReseqError {
  override readonly name = 'BacklogFullError';
  constructor() {
    super('BACKLOG_FULL', 'the pipeline is over its backlog limit; retry later with the same id', {
      statusCode: 429,
      retryable: true,
    });
  }
}
