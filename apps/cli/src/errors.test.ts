import { ConfigError } from '@reseq/config';
import {
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
import { describe, expect, it } from 'vitest';
import {
  EXIT,
  RedisUnreachableError,
  ReplayUnsupportedError,
  toFailure,
  UnknownDestinationError,
  UsageError,
} from './errors.js';

describe('toFailure', () => {
  it('gives each kind of failure its exit status and a one-line reason', () => {
    expect(toFailure(new UsageError('no command given'))).toEqual({
      exitCode: EXIT.usage,
      line: 'reseq: no command given (see reseq --help)',
    });
    expect(toFailure(new UnknownDestinationError('x', ['a', 'b']))).toEqual({
      exitCode: EXIT.unknownDestination,
      line: 'reseq: unknown destination "x" (known: a, b)',
    });
    expect(toFailure(new DeadLetterNotFoundError('a', 3))).toEqual({
      exitCode: EXIT.noSuchDeadLetter,
      line: 'reseq: a has no dead letter at sequence 3',
    });
    expect(toFailure(new DeadLetterPassedError('a', 3, 5)).exitCode).toBe(EXIT.alreadyPassed);
    expect(toFailure(new ShardMigrationRefusedError(['billing: 2 message(s) not delivered yet', 'x']))).toEqual({
      exitCode: EXIT.shardMigrationRefused,
      line: 'reseq: cannot change the shard count now: billing: 2 message(s) not delivered yet; x',
    });
    expect(toFailure(new RedisUnreachableError('h:1', 5000, new Error('connect ECONNREFUSED h:1')))).toEqual({
      exitCode: EXIT.redisUnavailable,
      line: 'reseq: cannot reach Redis at h:1: connect ECONNREFUSED h:1',
    });
    expect(toFailure(new RedisUnavailableError(new Error('Connection is closed.'))).line).toBe(
      'reseq: Redis is unavailable: Connection is closed.',
    );
    expect(toFailure(new ReplicasUnavailableError(2, 1, 2000))).toEqual({
      exitCode: EXIT.redisUnavailable,
      line:
        'reseq: done on the Redis master, but only 1 of 2 replicas confirmed it within 2000 ms; ' +
        "a failover now could undo it: check 'pnpm reseq status'",
    });
    expect(toFailure(new ConfigError(['env REDIS_URL: bad', 'RESEQ_CONFIG destinations: bad']))).toEqual({
      exitCode: EXIT.configInvalid,
      line: 'reseq: invalid configuration: env REDIS_URL: bad; RESEQ_CONFIG destinations: bad',
    });
    expect(toFailure(new Error('first\nsecond'))).toEqual({ exitCode: EXIT.internal, line: 'reseq: first; second' });
    expect(toFailure('thrown')).toEqual({ exitCode: EXIT.internal, line: 'reseq: thrown' });
  });

  it('refuses a replay that cannot be met with exit 8 and says why', () => {
    expect(toFailure(new ReplayNotRetainedError('billing', 3, 41, 140))).toEqual({
      exitCode: EXIT.replayRefused,
      line: 'reseq: billing retains sequences 41 to 140 only: 3 is no longer retained; the oldest you can replay from is 41',
    });
    expect(toFailure(new ReplayNotRetainedError('billing', 3, 0, 0)).line).toMatch(/no retained history/);
    expect(toFailure(new ReplayNotDeliveredError('billing', 9, 6))).toEqual({
      exitCode: EXIT.replayRefused,
      line: 'reseq: billing has delivered up to 6: 9 was not delivered yet, so there is nothing to replay from it',
    });
    expect(toFailure(new ReplayPausedError('billing', 1_700_000_000_000)).line).toMatch(
      /^reseq: billing is paused \(since 2023-11-14T22:13:20.000Z\): resume it first/,
    );
    expect(toFailure(new ReplayPendingError('billing', 3, 6, 0)).line).toMatch(
      /from 3 to 6 pending \(not started yet\)/,
    );
    expect(toFailure(new ReplayPendingError('billing', 3, 6, 5)).line).toMatch(/pending \(at 5\)/);
    for (const type of ['tcp', 'postgres', undefined]) {
      const failure = toFailure(new ReplayUnsupportedError('ledger', type));
      expect(failure.exitCode).toBe(EXIT.replayRefused);
      expect(failure.line).toMatch(/^reseq: ledger cannot be replayed: .*; replay is for http destinations$/);
    }
  });

  it('never prints more than one line', () => {
    for (const err of [new Error('a\n  - b\n  - c'), new UsageError('x'), new ConfigError(['a', 'b'])]) {
      expect(toFailure(err).line).not.toContain('\n');
    }
  });
});
