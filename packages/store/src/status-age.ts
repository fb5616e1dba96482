/**
 * How long each destination's oldest unsettled message has waited, for `reseq status` and the
 * status page: the accept time of the sequence after its delivered position, found where that
 * message is now (input stream, result stream or reorder buffer) by lua/status-age.lua.
 */
import type { KeySchema } from './keys.js';
import { runScript, type ReseqRedis } from './scripts.js';

/** Most entries the script reads from each stream looking for a message. */
export const STATUS_AGE_SCAN_LIMIT = 500;

/**
 * The accept time (ms since the epoch) of each destination's oldest unsettled message
 * (sequence delivered + 1): 0 when nothing is unsettled, null when it was not found (lost, or
 * further into a long input stream than {@link STATUS_AGE_SCAN_LIMIT} entries) or carries no
 * accept time.
 */
export async function readOldestUnsettled(
  redis: ReseqRedis,
  keys: KeySchema,
  destinations: readonly string[],
): Promise<Map<string, number | null>> {
  const out = new Map<string, number | null>();
  if (destinations.length === 0) return out;
  const scriptKeys = [keys.delivered, keys.sequences, keys.input];
  for (const d of destinations) scriptKeys.push(keys.buffer(d), keys.results(d));
  const reply = (await runScript(redis, 'status-age', scriptKeys, [
    destinations.length,
    STATUS_AGE_SCAN_LIMIT,
    ...destinations,
  ])) as number[];
  destinations.forEach((d, i) => {
    const at = Number(reply[i] ?? -1);
    out.set(d, at < 0 ? null : at);
  });
  return out;
}
