import { ConfigError } from '@reseq/config';
import {
  DeadLetterNotFoundError,
  DeadLetterPassedError,
  RedisUnavailableError,
  ReplicasUnavailableError,
} from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { EXIT, RedisUnreachableError, toFailure, UnknownDestinationError, UsageError } from './errors.js';

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

  it('never prints more than one line', () => {
    for (const err of [new Error('a\n  - b\n  - c'), new UsageError('x'), new ConfigError(['a', 'b'])]) {
      expect(toFailure(err).line).not.toContain('\n');
    }
  });
});
