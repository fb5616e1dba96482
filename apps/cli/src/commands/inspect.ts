/**
 * `reseq inspect [--json]`: the raw streams, groups, pending entries, hashes and leases of the
 * pipeline, each line with the redis-cli command that shows the same, for an operator who
 * wants to look underneath `status` (docs/operations.md, "Inspecting with redis-cli"). With
 * several shards (RESEQ_SHARDS), one such picture per shard, with its own keys.
 */
import { inspectShards, type Inspection } from '@reseq/store';
import { destinations, type CommandContext } from '../context.js';
import { renderTable } from '../table.js';

/** Reads the raw state of every shard and of every destination reseq knows, shard 0 first. */
export async function inspect(ctx: CommandContext): Promise<Inspection[]> {
  return inspectShards(ctx.redis, ctx.shards, await destinations(ctx));
}

/**
 * The inspection as JSON (one shard: its picture; several: `{ prefix, shards: [...] }`), or as
 * one table per shard: what, value, and the redis-cli command.
 */
export function formatInspect(reports: readonly Inspection[], json: boolean): string {
  if (reports.length === 1) return formatShard(reports[0]!, json);
  if (json) return JSON.stringify({ prefix: reports[0]?.prefix, shards: reports }, null, 2);
  return reports
    .map((report, shard) => `shard ${shard} of ${reports.length}: ${formatShard(report, false)}`)
    .join('\n\n');
}

function formatShard(report: Inspection, json: boolean): string {
  if (json) return JSON.stringify(report, null, 2);
  const rows: string[][] = [];
  const { input } = report;
  rows.push(['input stream length', String(input.length.value), input.length.command]);
  for (const g of input.groups.value) {
    rows.push([
      `group ${g.name}`,
      `${g.consumers} consumers, ${g.pending} pending, last ${g.lastDeliveredId}, lag ${g.lag ?? '?'}`,
      input.groups.command,
    ]);
  }
  if (input.groups.value.length === 0) rows.push(['groups', 'none yet', input.groups.command]);
  const pending = input.pending.value;
  rows.push(['pending entries', String(pending.total), input.pending.command]);
  for (const [consumer, count] of Object.entries(pending.consumers)) {
    rows.push([`  pending of ${consumer}`, String(count), input.pending.command]);
  }
  rows.push(['dead-letter stream length', String(report.deadLetters.length.value), report.deadLetters.length.command]);
  rows.push(['hedge requests waiting', String(report.hedges.length.value), report.hedges.length.command]);
  for (const [name, hash] of Object.entries(report.hashes)) {
    const fields = Object.entries(hash.value);
    const text = fields.length === 0 ? '-' : fields.map(([field, value]) => `${field}=${value}`).join(' ');
    rows.push([`hash ${name}`, text, hash.command]);
  }
  for (const [d, s] of Object.entries(report.destinations)) {
    rows.push([`${d}: result stream`, String(s.results.value), s.results.command]);
    rows.push([`${d}: reorder buffer`, String(s.buffer.value), s.buffer.command]);
    rows.push([`${d}: dead letters`, String(s.deadLetterIndex.value), s.deadLetterIndex.command]);
    rows.push([`${d}: history`, String(s.history.value), s.history.command]);
    const replay = s.replay.value;
    const replaying =
      replay === null ? 'none' : `from ${replay.from ?? '?'} to ${replay.to ?? '?'}, next ${replay.next ?? '?'}`;
    rows.push([`${d}: replay`, replaying, s.replay.command]);
    const lease = s.lease.value === null ? 'none' : `${s.lease.value} (${s.lease.ttlMs ?? '?'} ms left)`;
    rows.push([`${d}: lease`, lease, s.lease.command]);
  }
  const table = renderTable([{ header: 'WHAT' }, { header: 'VALUE' }, { header: 'REDIS-CLI' }], rows);
  return `pipeline prefix ${report.prefix} (keys ${report.tag}:*)\n\n${table}`;
}
