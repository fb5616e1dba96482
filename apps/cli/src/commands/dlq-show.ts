/**
 * `reseq dlq show <destination> <sequence> [--json]`: one dead letter in full, its payload
 * included, to decide between `dlq retry` and `dlq skip`.
 */
import { getDeadLetter, type DeadLetter } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';
import { isoTime } from '../table.js';
import { deadLetterJson } from './dlq-list.js';

/** Reads the dead letter of `destination` at `sequence`. */
export async function dlqShow(ctx: CommandContext, destination: string, sequence: number): Promise<DeadLetter> {
  await requireDestination(ctx, destination);
  return getDeadLetter(ctx.redis, ctx.shards.forDestination(destination), destination, sequence);
}

const NEXT_STEP: Record<DeadLetter['state'], string> = {
  blocking: "it blocks its destination: 'dlq retry' or 'dlq skip' releases it",
  ahead: "its destination has not reached it yet: 'dlq retry' or 'dlq skip' settles it in advance",
  passed: "its destination has passed it: 'dlq skip' removes it from the list",
};

/** One dead letter as JSON, or as `field: value` lines with the payload pretty-printed. */
export function formatDeadLetter(letter: DeadLetter, json: boolean): string {
  const view = deadLetterJson(letter);
  if (json) return JSON.stringify(view, null, 2);
  const payload = typeof view.payload === 'string' ? view.payload : JSON.stringify(view.payload, null, 2);
  return [
    `destination:      ${letter.destination}`,
    `sequence:         ${letter.sequence}`,
    `id:               ${letter.id}`,
    `stage:            ${letter.stage}`,
    `state:            ${letter.state} (${NEXT_STEP[letter.state]})`,
    `attempts:         ${letter.attempts}`,
    `last error:       ${letter.lastError}`,
    `accepted at:      ${isoTime(letter.acceptedAt)}`,
    `dead-lettered at: ${isoTime(letter.deadLetteredAt)}`,
    `entry id:         ${letter.entryId}`,
    `payload (${letter.stage === 'transform' ? 'original' : 'transformed'}):`,
    payload,
  ].join('\n');
}
