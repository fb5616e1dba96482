/**
 * `reseq shards [--json]`: how the pipeline's destinations are spread over shards
 * (RESEQ_SHARDS), each shard's hash tag and cluster slot. `reseq shards migrate --to <count>`:
 * moves a drained pipeline, every app stopped, to another shard count (store's
 * shard-migration.ts; docs/operations.md, "Changing the shard count").
 */
import { keySlot, migrateShards, Shards, type ShardMigration } from '@reseq/store';
import { destinations, type CommandContext } from '../context.js';
import { renderTable } from '../table.js';

/** What `shards --json` prints. */
export interface ShardsReport {
  prefix: string;
  count: number;
  /** Where the pipeline-wide keys are (sender heartbeats, source leases, the recorded count). */
  home: { tag: string; slot: number };
  shards: { shard: number; tag: string; slot: number; destinations: string[] }[];
}

/** The layout of the pipeline, with every destination reseq knows on its shard. */
export async function shards(ctx: CommandContext): Promise<ShardsReport> {
  const known = await destinations(ctx);
  const { shards: layout } = ctx;
  return {
    prefix: layout.prefix,
    count: layout.count,
    home: { tag: layout.home.tag, slot: keySlot(layout.home.meta) },
    shards: layout.all.map((keys) => ({
      shard: keys.shard,
      tag: keys.tag,
      slot: keySlot(keys.input),
      destinations: known.filter((d) => layout.shardOf(d) === keys.shard),
    })),
  };
}

/** The layout as JSON or as a table. */
export function formatShards(report: ShardsReport, json: boolean): string {
  if (json) return JSON.stringify(report, null, 2);
  const table = renderTable(
    [{ header: 'SHARD', right: true }, { header: 'TAG' }, { header: 'SLOT', right: true }, { header: 'DESTINATIONS' }],
    report.shards.map((s) => [String(s.shard), s.tag, String(s.slot), s.destinations.join(', ') || '-']),
  );
  return (
    `pipeline ${report.prefix}: ${report.count} shard${report.count === 1 ? '' : 's'} ` +
    `(pipeline-wide keys under ${report.home.tag}, slot ${report.home.slot})\n\n${table}`
  );
}

/** Moves the pipeline from RESEQ_SHARDS shards to `to`. */
export async function migrate(ctx: CommandContext, to: number): Promise<ShardMigration> {
  return migrateShards(ctx.redis, ctx.shards, new Shards(ctx.shards.prefix, to), {
    destinations: await destinations(ctx),
    liveMs: ctx.config.sender.leaseTtlMs,
  });
}

/** What was moved, as JSON or as a few lines. */
export function formatMigration(report: ShardMigration, json: boolean): string {
  if (json) return JSON.stringify(report, null, 2);
  if (report.from === report.to) return `the pipeline has ${report.to} shard(s) already: nothing to do`;
  const moved = Object.entries(report.destinations).map(
    ([d, m]) => `  ${d}: shard ${m.from} -> ${m.to}, last sequence ${m.sequence}`,
  );
  return [
    `moved the pipeline from ${report.from} to ${report.to} shard(s):`,
    ...moved,
    `  ${report.clientIds} client id(s) and ${report.historyEntries} history entries moved`,
    `start every app (and run the CLI) with RESEQ_SHARDS=${report.to} now`,
  ].join('\n');
}
