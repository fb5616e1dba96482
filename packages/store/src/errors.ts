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

/**
 * `REDIS_REPLICAS_UNAVAILABLE` (503, retryable): a write that counts was not confirmed by
 * `RESEQ_WAIT_REPLICAS` replicas within `RESEQ_WAIT_TIMEOUT_MS`. It may be on the master and
 * may survive, but it does not count: ingest answers 503 (the client retries with the same id,
 * which confirms the stored write), senders retry the step.
 */
export class ReplicasUnavailableError extends ReseqError {
  override readonly name = 'ReplicasUnavailableError';
  constructor(required: number, confirmed: number, timeoutMs: number, cause?: unknown) {
    super(
      'REDIS_REPLICAS_UNAVAILABLE',
      `only ${confirmed} of ${required} Redis replicas confirmed the write within ${timeoutMs} ms; retry with the same id`,
      { statusCode: 503, retryable: true, context: { required, confirmed, timeoutMs }, cause },
    );
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

/**
 * Reply prefixes that mean "Redis cannot take writes right now", not "the request is bad".
 * MOVED and ASK reach a caller only when a Cluster client could not follow them (a slot's
 * master failing over): nothing ran.
 */
const TRANSIENT_REPLIES = [
  'OOM',
  'LOADING',
  'READONLY',
  'MASTERDOWN',
  'BUSY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'NOREPLICAS',
  'MOVED',
  'ASK',
];

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

/** `DLQ_NOT_FOUND`: an operator named a sequence that is not a dead letter of that destination. */
export class DeadLetterNotFoundError extends ReseqError {
  override readonly name = 'DeadLetterNotFoundError';
  constructor(destination: string, sequence: number) {
    super('DLQ_NOT_FOUND', `${destination} has no dead letter at sequence ${sequence}`, {
      statusCode: 404,
      context: { destination, sequence },
    });
  }
}

/**
 * `DLQ_LOST`: `dlq retry` of a sequence that was lost (found nowhere after the gap timeout):
 * there is no message to retry; `dlq skip` gives it up.
 */
export class DeadLetterLostError extends ReseqError {
  override readonly name = 'DeadLetterLostError';
  constructor(destination: string, sequence: number) {
    super(
      'DLQ_LOST',
      `${destination} sequence ${sequence} was lost (it exists nowhere any more): there is nothing to retry; ` +
        `'dlq skip' gives it up`,
      { statusCode: 409, context: { destination, sequence } },
    );
  }
}

/**
 * `DLQ_ALREADY_PASSED`: `dlq retry` of a dead letter whose destination has moved past it (it
 * was skipped): it cannot be delivered in its own place any more.
 */
export class DeadLetterPassedError extends ReseqError {
  override readonly name = 'DeadLetterPassedError';
  constructor(destination: string, sequence: number, delivered: number) {
    super(
      'DLQ_ALREADY_PASSED',
      `${destination} has already passed sequence ${sequence} (delivered up to ${delivered}): ` +
        `it can no longer be delivered in its place; 'dlq skip' removes it from the list`,
      { statusCode: 409, context: { destination, sequence, delivered } },
    );
  }
}

/**
 * `REPLAY_NOT_RETAINED`: `reseq replay --from` names a sequence the destination's history no
 * longer holds (trimmed to about `sender.historyLength` values), or the history is empty.
 */
export class ReplayNotRetainedError extends ReseqError {
  override readonly name = 'ReplayNotRetainedError';
  constructor(destination: string, from: number, oldest: number, newest: number) {
    super(
      'REPLAY_NOT_RETAINED',
      oldest === 0
        ? `${destination} has no retained history: nothing can be replayed (sender.historyLength 0, or nothing delivered since it was set)`
        : `${destination} retains sequences ${oldest} to ${newest} only: ${from} is no longer retained; the oldest you can replay from is ${oldest}`,
      { statusCode: 409, context: { destination, from, oldest, newest } },
    );
  }
}

/** `REPLAY_NOT_DELIVERED`: `reseq replay --from` names a sequence not delivered yet. */
export class ReplayNotDeliveredError extends ReseqError {
  override readonly name = 'ReplayNotDeliveredError';
  constructor(destination: string, from: number, delivered: number) {
    super(
      'REPLAY_NOT_DELIVERED',
      `${destination} has delivered up to ${delivered}: ${from} was not delivered yet, so there is nothing to replay from it`,
      { statusCode: 409, context: { destination, from, delivered } },
    );
  }
}

/** `REPLAY_PAUSED`: `reseq replay` of a paused destination (a pause means "send nothing"). */
export class ReplayPausedError extends ReseqError {
  override readonly name = 'ReplayPausedError';
  constructor(destination: string, since: number) {
    super(
      'REPLAY_PAUSED',
      `${destination} is paused (since ${new Date(since).toISOString()}): resume it first ('reseq destination resume ${destination}')`,
      { statusCode: 409, context: { destination, since } },
    );
  }
}

/** `REPLAY_PENDING`: `reseq replay` while another replay of the destination is not finished. */
export class ReplayPendingError extends ReseqError {
  override readonly name = 'ReplayPendingError';
  constructor(destination: string, from: number, to: number, next: number) {
    super(
      'REPLAY_PENDING',
      `${destination} has a replay from ${from} to ${to} pending (${next > 0 ? `at ${next}` : 'not started yet'}): ` +
        `wait until 'reseq status' shows it done`,
      { statusCode: 409, context: { destination, from, to, next } },
    );
  }
}
