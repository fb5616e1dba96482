/**
 * `reseq dlq retry <destination> <sequence> [--json]`: gives a dead letter another go in its
 * own place. A transform-stage one is transformed again (attempts start over); a delivery-stage
 * one is delivered again (its transformed payload). A blocked sender notices within 2 s.
 */
import { retryDeadLetter, type RetryOutcome } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';

/** Retries the dead letter of `destination` at `sequence`. */
export async function dlqRetry(ctx: CommandContext, destination: string, sequence: number): Promise<RetryOutcome> {
  await requireDestination(ctx, destination);
  return retryDeadLetter(ctx.redis, ctx.shards.forDestination(destination), destination, sequence);
}

/** What was done, as JSON or as one sentence. */
export function formatRetry(destination: string, sequence: number, outcome: RetryOutcome, json: boolean): string {
  if (json) return JSON.stringify({ destination, sequence, retried: true, stage: outcome.stage });
  return outcome.stage === 'transform'
    ? `retried ${destination} ${sequence}: back on the input stream; it is transformed again and delivered in its place`
    : `retried ${destination} ${sequence}: its transformed payload is delivered again, in its place`;
}
