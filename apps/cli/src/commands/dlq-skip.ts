/**
 * `reseq dlq skip <destination> <sequence> [--json]`: gives a dead letter up; the
 * destination's order moves past it (a result that still turns up for it is dead-lettered as
 * late). A blocked sender notices within 2 s.
 */
import { skipDeadLetter, type SkipOutcome } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';

/** Skips the dead letter of `destination` at `sequence`. */
export async function dlqSkip(ctx: CommandContext, destination: string, sequence: number): Promise<SkipOutcome> {
  await requireDestination(ctx, destination);
  return skipDeadLetter(ctx.redis, ctx.shards.forDestination(destination), destination, sequence);
}

/** What was done, as JSON or as one sentence. */
export function formatSkip(destination: string, sequence: number, outcome: SkipOutcome, json: boolean): string {
  if (json) return JSON.stringify({ destination, sequence, skipped: true, outcome });
  return outcome === 'skipped'
    ? `skipped ${destination} ${sequence}: it is never delivered; the destination moves past it`
    : `removed the dead letter of ${destination} at ${sequence} (the destination had passed it already)`;
}
