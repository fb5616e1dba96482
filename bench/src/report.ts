/**
 * The readable side of the results: a Markdown table with one row per run, a table of CPU and
 * memory per process, and the targets checked against the runs that measured them.
 */
import type { RunResult } from './run.js';
import { systemLabel } from './topology.js';
import type { Summary } from './trace.js';

/** One of the targets, as measured. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** Undefined where the run it needs was not part of this invocation (or failed). */
  met: boolean | undefined;
}

/** Formats a duration in ms: `740`, `12.3 s`, `∞` (never delivered). */
export function formatMs(ms: number): string {
  if (ms === Infinity) return '∞';
  if (!Number.isFinite(ms)) return '–';
  if (Math.abs(ms) >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (Math.abs(ms) >= 100) return ms.toFixed(0);
  return ms.toFixed(1);
}

/** A duration with its unit: `752 ms`, `16.4 s`, `∞`. */
export function formatDuration(ms: number): string {
  const text = formatMs(ms);
  return /[0-9]$/.test(text) ? `${text} ms` : text;
}

function formatSummary(s: Summary): string {
  return `${formatMs(s.p50)} / ${formatMs(s.p99)} / ${formatMs(s.max)}`;
}

function formatNumber(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The run of `system` in the same scenario and variant as `run`. */
function sibling(results: readonly RunResult[], run: RunResult, system: string): RunResult | undefined {
  return results.find((r) => r.scenario === run.scenario && r.variant === run.variant && r.system === system);
}

/** Throughput of `run` divided by that of `system` in the same scenario and variant. */
export function throughputRatio(results: readonly RunResult[], run: RunResult, system: string): number | undefined {
  const other = sibling(results, run, system)?.trace?.throughputPerSecond;
  const mine = run.trace?.throughputPerSecond;
  if (other === undefined || mine === undefined || other <= 0) return undefined;
  return mine / other;
}

const HEADER = [
  'scenario',
  'system',
  'delivered',
  'msg/s',
  'latency ms p50 / p99 / max',
  'overhead ms p50 / p99 / max',
  'order viol.',
  'dup.',
  'Redis cmds/msg',
  'CPU ms/msg',
  'peak MB',
  'vs limit',
];

/** The results as a Markdown table, one row per run. */
export function formatTable(results: readonly RunResult[]): string {
  const rows = results.map((r) => {
    const name = r.variant === '' ? r.scenario : `${r.scenario} (${r.variant})`;
    if (r.skipped !== undefined || r.failed !== undefined) {
      const why = r.skipped !== undefined ? `skipped: ${r.skipped}` : `FAILED: ${firstLine(r.failed!)}`;
      return [name, systemLabel(r.system, r.spec.system.topology), why, ...HEADER.slice(3).map(() => '')];
    }
    const t = r.trace!;
    // Against the limit only where both went as fast as they could (a paced run's rate is the pace).
    const ratio =
      r.system === 'limit' || r.spec.load.kind !== 'closed' ? undefined : throughputRatio(results, r, 'limit');
    const ideal = r.fractionOfIdeal === undefined ? '' : ` (${(r.fractionOfIdeal * 100).toFixed(0)}% of ideal)`;
    return [
      name,
      systemLabel(r.system, r.spec.system.topology),
      `${formatNumber(t.delivered)}/${formatNumber(t.accepted)}`,
      `${formatNumber(t.throughputPerSecond, t.throughputPerSecond < 10 ? 1 : 0)}${ideal}`,
      t.latencyMs.max === Infinity && t.deliveredLatencyMs.count > 0
        ? `${formatSummary(t.latencyMs)} (delivered: ${formatSummary(t.deliveredLatencyMs)})`
        : formatSummary(t.latencyMs),
      formatSummary(t.overheadMs),
      String(t.orderViolations),
      String(t.duplicates),
      r.redis ? formatNumber(r.redis.callsPerMessage, 1) : '–',
      formatNumber(r.cpuMsPerMessage, 3),
      formatNumber(r.peakRssMB),
      ratio === undefined ? '' : ratio.toFixed(2),
    ];
  });
  return markdown([HEADER, ...rows]);
}

/** CPU ms per message and peak memory of every process of every run. */
export function formatUsage(results: readonly RunResult[]): string {
  const rows = results
    .filter((r) => r.usage !== undefined)
    .map((r) => {
      const name = r.variant === '' ? r.scenario : `${r.scenario} (${r.variant})`;
      const cpu = Object.entries(r.usage!)
        .map(([label, u]) => `${label} ${u.cpuMsPerMessage.toFixed(3)}`)
        .join(', ');
      const memory = Object.entries(r.usage!)
        .filter(([, u]) => u.peakRssMB !== undefined)
        .map(([label, u]) => `${label} ${u.peakRssMB!.toFixed(0)}`)
        .join(', ');
      return [name, systemLabel(r.system, r.spec.system.topology), cpu, memory];
    });
  return markdown([['scenario', 'system', 'CPU ms per message, by process', 'peak RSS MB, by process'], ...rows]);
}

/** The targets, against the runs of this invocation. */
export function checkTargets(results: readonly RunResult[]): TargetCheck[] {
  const find = (scenario: string, variant: string, system: string): RunResult | undefined =>
    results.find((r) => r.scenario === scenario && r.variant === variant && r.system === system && r.trace);
  const checks: TargetCheck[] = [];

  const load = find('load', '', 'reseq');
  checks.push({
    target: 'load: zero order violations',
    measured: load ? String(load.trace!.orderViolations) : 'not run',
    met: load ? load.trace!.orderViolations === 0 : undefined,
  });
  checks.push({
    target: 'load: p99 overhead over the ideal ordered latency ≤ 20 ms',
    measured: load ? formatDuration(load.trace!.overheadMs.p99) : 'not run',
    met: load ? load.trace!.overheadMs.p99 <= 20 : undefined,
  });

  const ahead = find('load', '', 'reseq+ahead');
  if (ahead)
    checks.push({
      target: 'load, with sender.recordAhead: p99 overhead over the ideal ordered latency ≤ 20 ms',
      measured: formatDuration(ahead.trace!.overheadMs.p99),
      met: ahead.trace!.overheadMs.p99 <= 20 && ahead.trace!.orderViolations === 0,
    });

  const ceiling = find('ceiling', 'tcp, 64 dest', 'reseq');
  checks.push({
    target: 'ceiling: ≥ 20,000 msg/s end to end over TCP with 64 destinations',
    measured: ceiling ? `${formatNumber(ceiling.trace!.throughputPerSecond)} msg/s` : 'not run',
    met: ceiling ? ceiling.trace!.throughputPerSecond >= 20_000 : undefined,
  });
  for (const other of ['bullmq', 'groupmq']) {
    const ratio = ceiling ? throughputRatio(results, ceiling, other) : undefined;
    checks.push({
      target: `ceiling: throughput ≥ ${other}'s at the same concurrency (TCP, 64 destinations)`,
      measured: ratio === undefined ? 'not run' : `ratio ${ratio.toFixed(2)}`,
      met: ratio === undefined ? undefined : ratio >= 1,
    });
  }

  const scaling = find('scaling', '8 workers', 'reseq');
  checks.push({
    target: 'scaling: ≥ 90% of the ideal throughput at 8 workers',
    measured: scaling?.fractionOfIdeal === undefined ? 'not run' : `${(scaling.fractionOfIdeal * 100).toFixed(1)}%`,
    met: scaling?.fractionOfIdeal === undefined ? undefined : scaling.fractionOfIdeal >= 0.9,
  });
  return checks;
}

/** The target checks as a Markdown table. */
export function formatTargets(checks: readonly TargetCheck[]): string {
  return markdown([
    ['target', 'measured', 'met'],
    ...checks.map((c) => [c.target, c.measured, c.met === undefined ? '–' : c.met ? 'yes' : 'NO']),
  ]);
}

function markdown(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]): string => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}
