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

/** Reply prefixes that mean "Redis cannot take writes right now", not "the request is bad". */
const TRANSIENT_REPLIES = ['OOM', 'LOADING', 'READONLY', 'MASTERDOWN', 'BUSY', 'TRYAGAIN', 'CLUSTERDOWN', 'NOREPLICAS'];

/**
 * Maps what a Redis call threw to the catalogue: connection problems and transient server
 * states become {@link RedisUnavailableError}; reseq's own errors pass through; anything else
 * (a script bug) is returned unchanged for the caller to treat as internal.
 */
export function toStoreError(err: unknown): unknown {
  if (err instanceof ReseqError) return err;
  if (err instanceof Error && err.name === 'ReplyError') {
    return TRANSIENT_REPLIES.some((prefix) => err.message.startsWith(prefix)) ? new RedisUnavailableError(err) : err;
  }
  return new RedisUnavailableError(err);
}
