/**
 * `reseq destination pause|resume <destination> [--json]`: holds a destination's deliveries
 * back, or lets them go on. Ingest and the transform workers carry on while it is paused; its
 * sender finishes the delivery in flight, then waits (it notices within about 1 s, and a resume
 * within about 2 s) and delivers what waited, in order, once resumed.
 */
import { pauseDestination, resumeDestination, type PauseState } from '@reseq/store';
import { requireDestination, type CommandContext } from '../context.js';

/** Pauses (`pause: true`) or resumes `destination`. */
export async function destinationPause(ctx: CommandContext, destination: string, pause: boolean): Promise<PauseState> {
  await requireDestination(ctx, destination);
  return pause
    ? pauseDestination(ctx.redis, ctx.shards.forDestination(destination), destination)
    : resumeDestination(ctx.redis, ctx.shards.forDestination(destination), destination);
}

/** What was done, as JSON or as one sentence. */
export function formatPause(state: PauseState, json: boolean): string {
  if (json) return JSON.stringify(state);
  const { destination, paused, since, changed } = state;
  if (paused) {
    const when = new Date(since ?? 0).toISOString();
    return changed
      ? `paused ${destination}: its sender finishes the delivery in flight and sends nothing more until 'reseq destination resume ${destination}'`
      : `${destination} was paused already (since ${when})`;
  }
  return changed ? `resumed ${destination}: delivery goes on in order` : `${destination} was not paused`;
}
