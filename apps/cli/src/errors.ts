/**
 * Error catalogue of the operator CLI, and the one place where any error becomes an exit
 * status and a one-line reason on stderr (docs/errors.md lists both).
 */
import { ConfigError } from '@reseq/config';
import { ReseqError } from '@reseq/runtime';
import {
  DeadLetterLostError,
  DeadLetterNotFoundError,
  DeadLetterPassedError,
  RedisUnavailableError,
  ReplayNotDeliveredError,
  ReplayNotRetainedError,
  ReplayPausedError,
  ReplayPendingError,
  ReplicasUnavailableError,
  ShardMigrationRefusedError,
} from '@reseq/store';

/** Exit statuses of `reseq`: 0 success, and one per kind of failure, so scripts can tell them apart. */
export const EXIT = {
  ok: 0,
  /** Anything unexpected (a bug, an unexpected Redis reply). */
  internal: 1,
  /** Bad arguments: an unknown command or option, a missing or malformed one. */
  usage: 2,
  /** A destination that neither the config file nor Redis knows. */
  unknownDestination: 3,
  /** `dlq retry|skip|show` of a sequence that is not a dead letter of that destination. */
  noSuchDeadLetter: 4,
  /** `dlq retry` of a dead letter its destination has passed already, or of a lost sequence. */
  alreadyPassed: 5,
  /** Redis could not be reached, or failed while the command ran. */
  redisUnavailable: 6,
  /** The environment or RESEQ_CONFIG is invalid. */
  configInvalid: 7,
  /**
   * `replay` refused: `--from` is no longer retained or not delivered yet, the destination is
   * paused, has a replay pending, or is not an HTTP destination of the config file.
   */
  replayRefused: 8,
  /** `shards migrate` refused: messages in flight, dead letters, a pending replay or a running sender. */
  shardMigrationRefused: 9,
} as const;

/** `CLI_USAGE`: the command line is not one `reseq` understands. */
export class UsageError extends ReseqError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super('CLI_USAGE', message, { statusCode: 400 });
  }
}

/** `CLI_UNKNOWN_DESTINATION`: neither the config file nor Redis knows the destination. */
export class UnknownDestinationError extends ReseqError {
  override readonly name = 'UnknownDestinationError';
  constructor(destination: string, known: readonly string[]) {
    super(
      'CLI_UNKNOWN_DESTINATION',
      `unknown destination "${destination}" (known: ${known.length > 0 ? known.join(', ') : 'none'})`,
      { statusCode: 404, context: { destination, known } },
    );
  }
}

/**
 * `REPLAY_UNSUPPORTED`: `reseq replay` of a destination that is not an HTTP destination of the
 * config file. A TCP receiver is promised never a lower sequence after a higher one on a
 * connection; a PostgreSQL table holds every row exactly once (it is its own history); a
 * destination only Redis knows has no sender to run the replay.
 */
export class ReplayUnsupportedError extends ReseqError {
  override readonly name = 'ReplayUnsupportedError';
  constructor(destination: string, type: string | undefined) {
    const why =
      type === 'postgres'
        ? 'a postgres destination holds each row exactly once: read what it had from its table'
        : type === 'tcp'
          ? 'a tcp receiver is promised never a lower sequence after a higher one on a connection'
          : 'it is not in RESEQ_CONFIG, so no sender serves it';
    super('REPLAY_UNSUPPORTED', `${destination} cannot be replayed: ${why}; replay is for http destinations`, {
      statusCode: 409,
      context: { destination, type: type ?? null },
    });
  }
}

/** `CLI_REDIS_UNREACHABLE`: no connection to Redis within the connect timeout. */
export class RedisUnreachableError extends ReseqError {
  override readonly name = 'RedisUnreachableError';
  constructor(where: string, timeoutMs: number, cause?: unknown) {
    const reason = cause instanceof Error && cause.message ? cause.message : `no answer within ${timeoutMs} ms`;
    super('CLI_REDIS_UNREACHABLE', `cannot reach Redis at ${where}: ${reason}`, {
      statusCode: 503,
      context: { where, timeoutMs },
      cause,
    });
  }
}

/** How a failure ends the process: its exit status and the one line printed on stderr. */
export interface Failure {
  exitCode: number;
  line: string;
}

/** Maps anything a command threw to its exit status and a one-line reason. */
export function toFailure(err: unknown): Failure {
  const oneLine = (text: string): string => text.replace(/\s*\n\s*-?\s*/g, '; ').trim();
  if (err instanceof UsageError) return { exitCode: EXIT.usage, line: `reseq: ${err.message} (see reseq --help)` };
  if (err instanceof UnknownDestinationError)
    return { exitCode: EXIT.unknownDestination, line: `reseq: ${err.message}` };
  if (err instanceof DeadLetterNotFoundError) return { exitCode: EXIT.noSuchDeadLetter, line: `reseq: ${err.message}` };
  if (err instanceof DeadLetterLostError) return { exitCode: EXIT.alreadyPassed, line: `reseq: ${err.message}` };
  if (err instanceof DeadLetterPassedError) return { exitCode: EXIT.alreadyPassed, line: `reseq: ${err.message}` };
  if (
    err instanceof ReplayUnsupportedError ||
    err instanceof ReplayNotRetainedError ||
    err instanceof ReplayNotDeliveredError ||
    err instanceof ReplayPausedError ||
    err instanceof ReplayPendingError
  ) {
    return { exitCode: EXIT.replayRefused, line: `reseq: ${err.message}` };
  }
  if (err instanceof ShardMigrationRefusedError) {
    return { exitCode: EXIT.shardMigrationRefused, line: `reseq: ${err.message}` };
  }
  if (err instanceof RedisUnreachableError) return { exitCode: EXIT.redisUnavailable, line: `reseq: ${err.message}` };
  if (err instanceof RedisUnavailableError) {
    const cause = err.cause instanceof Error ? err.cause.message : 'connection lost';
    return { exitCode: EXIT.redisUnavailable, line: `reseq: Redis is unavailable: ${oneLine(cause)}` };
  }
  if (err instanceof ReplicasUnavailableError) {
    const { required, confirmed, timeoutMs } = err.context;
    return {
      exitCode: EXIT.redisUnavailable,
      line:
        `reseq: done on the Redis master, but only ${String(confirmed)} of ${String(required)} replicas ` +
        `confirmed it within ${String(timeoutMs)} ms; a failover now could undo it: check 'pnpm reseq status'`,
    };
  }
  if (err instanceof ConfigError) {
    return { exitCode: EXIT.configInvalid, line: `reseq: invalid configuration: ${err.problems.join('; ')}` };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { exitCode: EXIT.internal, line: `reseq: ${oneLine(message) || 'unexpected error'}` };
}
