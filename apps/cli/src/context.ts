/**
 * What every command gets: the connection, the shards of the pipeline (RESEQ_PREFIX,
 * RESEQ_SHARDS: where each destination's keys are) and the config, plus the check that a
 * destination an operator names is one reseq knows.
 */
import type { ReseqConfig } from '@reseq/config';
import { knownDestinationsOfShards, type ReseqRedis, type Shards } from '@reseq/store';
import { UnknownDestinationError } from './errors.js';

/** A command's view of the pipeline. */
export interface CommandContext {
  redis: ReseqRedis;
  /** The pipeline's shards; `shards.forDestination(d)` holds the keys of destination `d`. */
  shards: Shards;
  config: ReseqConfig;
}

/** The destinations of the config file, then any other that Redis knows. */
export function destinations(ctx: CommandContext): Promise<string[]> {
  return knownDestinationsOfShards(ctx.redis, ctx.shards, Object.keys(ctx.config.destinations));
}

/**
 * Checks that `destination` is in the config file or known to Redis.
 * @throws {UnknownDestinationError} otherwise.
 */
export async function requireDestination(ctx: CommandContext, destination: string): Promise<void> {
  if (Object.hasOwn(ctx.config.destinations, destination)) return;
  const known = await destinations(ctx);
  if (!known.includes(destination)) throw new UnknownDestinationError(destination, known);
}
