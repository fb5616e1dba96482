/**
 * Source leases (step 0 of a message that comes from a Kue or BullMQ queue): one ingest at a
 * time consumes a source, so its jobs become messages in the producer's order. The same fenced
 * lease scripts as the senders' destination leases (lua/lease-*.lua), on keys of their own.
 */
import type { KeySchema } from './keys.js';
import { runConfirmedScript } from './replication.js';
import { runScript, type ReseqRedis } from './scripts.js';

/**
 * Takes a source's lease if it is free, or extends the caller's own.
 * @returns the lease value ("<owner>|<token>") when the caller holds it now, else undefined.
 * @throws {ReplicasUnavailableError} where writes are confirmed and this one was not.
 */
export async function acquireSourceLease(
  redis: ReseqRedis,
  keys: KeySchema,
  owner: string,
  source: string,
  ttlMs: number,
): Promise<string | undefined> {
  const reply = (await runConfirmedScript(
    redis,
    keys.waitMark,
    'lease-acquire',
    [keys.sourceFences, keys.sourceLease(source)],
    [owner, ttlMs, 1, source],
  )) as string[];
  return reply[0] || undefined;
}

/**
 * Extends a held source lease.
 * @returns false when it was lost (expired or taken over).
 */
export async function renewSourceLease(
  redis: ReseqRedis,
  keys: KeySchema,
  source: string,
  leaseValue: string,
  ttlMs: number,
): Promise<boolean> {
  const reply = (await runConfirmedScript(
    redis,
    keys.waitMark,
    'lease-renew',
    [keys.sourceLease(source)],
    [ttlMs, leaseValue],
  )) as number[];
  return reply[0] === 1;
}

/** Gives a source lease back at once (graceful stop), so another ingest takes it over without waiting. */
export async function releaseSourceLease(
  redis: ReseqRedis,
  keys: KeySchema,
  source: string,
  leaseValue: string,
): Promise<void> {
  await runScript(redis, 'lease-release', [keys.sourceLease(source)], [leaseValue]);
}
