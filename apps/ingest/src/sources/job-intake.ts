/**
 * Turns one queued job into a message through the same intake as HTTP and TCP
 * (accept-message.ts), with a client id derived from the job, so a job taken again after a
 * crash is de-duplicated and answers the same sequences. Retryable refusals (Redis down,
 * backpressure, shutting down) are waited out and retried for the same job, never passed to
 * the queue: failing the job there would let later jobs overtake it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { toReseqError, type Logger, type ReseqError } from '@reseq/runtime';
import type { Accepted, MessageIntake, Sender } from '../accept-message.js';
import { PayloadTooLargeError } from '../errors.js';

/** Thrown where the source's lease was lost while a job waited: the job is left to the next holder. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

/** What {@link submitJob} needs. */
export interface JobIntakeContext {
  intake: MessageIntake;
  sender: Sender;
  destination: string;
  maxMessageBytes: number;
  logger: Logger;
  /** False once the source's lease is lost or ingest is stopping: stop retrying. */
  active: () => boolean;
}

/**
 * Submits a job's data as a message and resolves once it is durable.
 * @throws {ReseqError} a final (non-retryable) coded error: the job cannot become a message.
 * @throws {LeaseLostError} where the lease was lost (or ingest stops) before it was durable.
 */
export async function submitJob(ctx: JobIntakeContext, clientId: string, data: unknown): Promise<Accepted> {
  // Jobs are JSON in their queues already; this also rejects what JSON cannot carry.
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch {
    text = undefined;
  }
  const body = { destination: ctx.destination, payload: text === undefined ? undefined : data, id: clientId };
  // The same limit as an HTTP body or a TCP line carrying this message.
  if (text !== undefined && Buffer.byteLength(JSON.stringify(body)) > ctx.maxMessageBytes) {
    throw new PayloadTooLargeError(ctx.maxMessageBytes);
  }
  for (let attempt = 1; ; attempt++) {
    if (!ctx.active()) throw new LeaseLostError(`lease lost before job ${clientId} was durable`);
    try {
      return await ctx.intake(body, ctx.sender);
    } catch (err) {
      const coded: ReseqError = toReseqError(err);
      if (!isRetryable(coded)) throw coded;
      const waitMs = Math.min(100 * 2 ** Math.min(attempt - 1, 6), 5_000);
      if (attempt === 1 || attempt % 10 === 0) {
        ctx.logger.warn({ id: clientId, code: coded.code, attempt, waitMs }, 'source job not accepted yet; retrying');
      }
      await sleep(waitMs);
    }
  }
}

/**
 * Retryable: the coded retryable answers (429, 503), and anything uncoded (a lost connection,
 * an internal fault) — never final for a job, since failing it would reorder the queue.
 */
function isRetryable(error: ReseqError): boolean {
  return error.retryable || error.code === 'RESEQ_INTERNAL';
}
