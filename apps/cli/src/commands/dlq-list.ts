/**
 * `reseq dlq list [<destination>] [--json]`: the dead letters, ordered by destination and
 * sequence, each with its id, attempts, last error, stage and what its destination does about
 * it (`blocking`, `ahead`, `passed`).
 */
import { listDeadLettersOfShards, type DeadLetter } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';
import { isoTime, renderTable, truncate } from '../table.js';

/** A dead letter as the JSON output shows it: times in ISO 8601, the payload as JSON. */
export interface DeadLetterJson {
  destination: string;
  sequence: number;
  id: string;
  attempts: number;
  lastError: string;
  stage: DeadLetter['stage'];
  state: DeadLetter['state'];
  acceptedAt: string;
  deadLetteredAt: string;
  entryId: string;
  /** The stored payload, parsed; the raw text where it is not JSON. */
  payload: unknown;
}

/** The JSON form of one dead letter. */
export function deadLetterJson(letter: DeadLetter): DeadLetterJson {
  let payload: unknown = letter.payload;
  try {
    payload = JSON.parse(letter.payload);
  } catch {
    // Not JSON (a foreign entry): shown as stored.
  }
  return {
    destination: letter.destination,
    sequence: letter.sequence,
    id: letter.id,
    attempts: letter.attempts,
    lastError: letter.lastError,
    stage: letter.stage,
    state: letter.state,
    acceptedAt: isoTime(letter.acceptedAt),
    deadLetteredAt: isoTime(letter.deadLetteredAt),
    entryId: letter.entryId,
    payload,
  };
}

/** Reads the dead letters (of one destination, when given). */
export async function dlqList(ctx: CommandContext, destination: string | undefined): Promise<DeadLetter[]> {
  if (destination !== undefined) await requireDestination(ctx, destination);
  return listDeadLettersOfShards(ctx.redis, ctx.shards, destination);
}

/** The list as JSON (`{ "deadLetters": [...] }`) or as a table. */
export function formatDeadLetters(letters: readonly DeadLetter[], json: boolean): string {
  if (json) return JSON.stringify({ deadLetters: letters.map(deadLetterJson) }, null, 2);
  if (letters.length === 0) return 'no dead letters';
  return renderTable(
    [
      { header: 'DESTINATION' },
      { header: 'SEQUENCE', right: true },
      { header: 'ID' },
      { header: 'STAGE' },
      { header: 'STATE' },
      { header: 'ATTEMPTS', right: true },
      { header: 'DEAD-LETTERED AT' },
      { header: 'LAST ERROR' },
    ],
    letters.map((l) => [
      l.destination,
      String(l.sequence),
      truncate(l.id, 40),
      l.stage,
      l.state,
      String(l.attempts),
      isoTime(l.deadLetteredAt),
      truncate(l.lastError, 100),
    ]),
  );
}
