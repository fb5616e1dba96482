/**
 * `reseq status [--json]`: per destination, how far ingest and delivery are, how many messages
 * are in flight and how long the oldest has waited, its dead letters and whether one blocks it,
 * its reorder buffer, its sender and a pending replay. One consistent snapshot (the age is read
 * a moment after it).
 */
import { readStatusOfShards, type DestinationStatus } from '@reseq/store';
import { destinations, type CommandContext } from '../context.js';
import { isoTime, renderTable } from '../table.js';

/** One destination in the report: the store's view, plus its policy from the config. */
export type StatusEntry = DestinationStatus & {
  /** `onDeadLetter` from the config; null for a destination only Redis knows. */
  onDeadLetter: 'block' | 'skip' | null;
};

/** What `status --json` prints. */
export interface StatusReport {
  destinations: Record<string, StatusEntry>;
}

/** Reads every destination's state. */
export async function status(ctx: CommandContext): Promise<StatusReport> {
  const names = await destinations(ctx);
  const states = await readStatusOfShards(ctx.redis, ctx.shards, names);
  const report: StatusReport = { destinations: {} };
  for (const [name, state] of states) {
    report.destinations[name] = { ...state, onDeadLetter: ctx.config.destinations[name]?.onDeadLetter ?? null };
  }
  return report;
}

/** The report as JSON (the contract's shape, the contract's four fields first) or as a table. */
export function formatStatus(report: StatusReport, json: boolean): string {
  if (json) return JSON.stringify(report, null, 2);
  const entries = Object.entries(report.destinations);
  if (entries.length === 0) return 'no destinations: RESEQ_CONFIG lists none, and Redis knows none';
  const rows = entries.map(([name, s]) => [
    name,
    String(s.assigned),
    String(s.delivered),
    String(s.lag),
    s.lagSeconds === null ? '?' : s.lagSeconds.toFixed(1),
    String(s.inFlight),
    String(s.deadLettered),
    s.blockedAt === null ? 'no' : `yes, at ${s.blockedAt}`,
    s.paused ? 'yes' : 'no',
    String(s.buffered),
    String(s.pendingResults),
    String(s.skipped),
    s.onDeadLetter ?? '-',
    s.activeSender === null ? '-' : `${s.activeSender} (token ${s.fencingToken ?? '?'})`,
  ]);
  const table = renderTable(
    [
      { header: 'DESTINATION' },
      { header: 'ASSIGNED', right: true },
      { header: 'DELIVERED', right: true },
      { header: 'LAG', right: true },
      { header: 'LAG (S)', right: true },
      { header: 'IN FLIGHT', right: true },
      { header: 'DEAD LETTERS', right: true },
      { header: 'BLOCKED' },
      { header: 'PAUSED' },
      { header: 'BUFFERED', right: true },
      { header: 'RESULTS', right: true },
      { header: 'SKIPPED', right: true },
      { header: 'ON DEAD LETTER' },
      { header: 'SENDER' },
    ],
    rows,
  );
  const paused = entries.filter(([, s]) => s.paused).map(([name]) => name);
  const notes: string[] = [];
  if (paused.length > 0) notes.push(`paused: ${paused.join(', ')}; see 'pnpm reseq destination resume <destination>'`);
  const blocked = entries.filter(([, s]) => s.blocked).map(([name, s]) => `${name} at ${s.blockedAt}`);
  if (blocked.length > 0) {
    notes.push(`blocked: ${blocked.join(', ')}; see 'pnpm reseq dlq list', then 'dlq retry' or 'dlq skip'`);
  }
  for (const [name, { replay }] of entries) {
    if (!replay) continue;
    notes.push(
      replay.next === null
        ? `replay pending: ${name} from ${replay.from} (requested ${isoTime(replay.requestedAt)}; its sender takes it up)`
        : `replaying: ${name} from ${replay.from} to ${replay.to ?? '?'}, next ${replay.next}`,
    );
  }
  return notes.length === 0 ? table : `${table}\n\n${notes.join('\n')}`;
}
