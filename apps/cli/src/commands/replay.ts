/**
 * `reseq replay <destination> --from <sequence> [--json]`: delivers a destination's retained
 * history again, in order, from `--from` up to its delivered position, then carries on. The
 * CLI only records the request, after checking it can be met; the destination's active sender
 * runs it between two sequences (within about a second), so one sender still delivers, in order.
 */
import { requestReplay, type ReplayScheduled } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';
import { ReplayUnsupportedError } from '../errors.js';
import { isoTime } from '../table.js';

/** Schedules a replay of `destination` from `from`. */
export async function replay(ctx: CommandContext, destination: string, from: number): Promise<ReplayScheduled> {
  await requireDestination(ctx, destination);
  const type = ctx.config.destinations[destination]?.type;
  if (type !== 'http') throw new ReplayUnsupportedError(destination, type);
  return requestReplay(ctx.redis, ctx.shards.forDestination(destination), destination, from);
}

/** What was scheduled, as JSON or as one sentence. */
export function formatReplay(scheduled: ReplayScheduled, json: boolean): string {
  if (json) return JSON.stringify({ ...scheduled, scheduled: true });
  const { destination, from, to, retained, requestedAt } = scheduled;
  return (
    `scheduled a replay of ${destination} from ${from} to ${to} (retained: ${retained.oldest} to ${retained.newest}; ` +
    `requested ${isoTime(requestedAt)}): its sender delivers them again, in order, then carries on; ` +
    `'reseq status' shows it until it is done`
  );
}
