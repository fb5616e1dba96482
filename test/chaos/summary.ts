/**
 * The chaos run's summary, for a person: what ran, what was killed, and per destination what
 * arrived (lost, out of order, redelivered), then the reasons of a failure with examples.
 */
import { relative } from 'node:path';
import type { ChaosReport } from './run-chaos.js';

const n = (value: number): string => value.toLocaleString('en');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Formats a report as lines of text. */
export function formatSummary(report: ChaosReport): string {
  const { options, timings, load, chaos, totals } = report;
  const lines: string[] = [];
  const row = (label: string, text: string): void => {
    lines.push(`  ${label.padEnd(12)} ${text}`);
  };
  const latency = report.verdicts.map((v) => v.latencyMs);
  const p50 = Math.max(0, ...latency.map((l) => l.p50));
  const p99 = Math.max(0, ...latency.map((l) => l.p99));
  const max = Math.max(0, ...latency.map((l) => l.max));

  lines.push(`reseq chaos run: ${report.passed ? 'PASSED' : 'FAILED'} (seed ${String(options.seed)})`);
  row(
    'messages',
    `${n(load.accepted)} of ${n(options.messages)} accepted, ${n(report.expectedDeliveries)} deliveries due to ` +
      `${String(options.destinations)} HTTP destinations`,
  );
  row(
    'duration',
    `${s(timings.loadMs)} load and chaos, ${s(timings.drainMs)} for the last deliveries, ${s(timings.totalMs)} in all`,
  );
  row(
    'processes',
    `${String(options.processes.ingest)} ingest, ${String(options.processes.worker)} transform-worker, ` +
      `${String(options.processes.sender)} resequencer-sender, redis-server with AOF (appendfsync always)`,
  );
  row(
    'kills',
    `ingest ${String(chaos.kills.ingest)}, transform-worker ${String(chaos.kills.worker)} ` +
      `(${String(report.workerNames.reused)} back under the same consumer name, ${String(report.workerNames.fresh)} under a new one), ` +
      `resequencer-sender ${String(chaos.kills.sender)}: all SIGKILL`,
  );
  row(
    'Redis',
    `${String(chaos.redisRestarts)} SIGKILL + restart from the AOF (longest down ${s(chaos.longestRedisDownMs)})`,
  );
  const r = load.retries;
  row(
    'client',
    `${n(load.requests)} requests; retried with the same id: ${n(r.status503)} after 503, ${n(r.status429)} after 429, ` +
      `${n(r.connection)} lost connections, ${n(r.timeout)} timeouts, ${n(r.other5xx)} other 5xx`,
  );
  row('sinks', `${n(report.sinkErrors)} delivery attempts answered 503 on purpose (retried by the senders)`);
  row(
    'result',
    `lost ${n(totals.lost)}, reordered ${n(totals.reordered)}, redelivered ${n(totals.redelivered)} (same Idempotency-Key), ` +
      `stale repeats ${n(totals.staleRepeats)}, wrong payload ${n(totals.wrongPayload)}, unexpected ${n(totals.unexpected)}`,
  );
  row('latency', `202 to first delivery, worst destination: p50 ${n(p50)} ms, p99 ${n(p99)} ms, max ${n(max)} ms`);
  row('dead letters', `${String(report.deadLetters)}; blocked destinations: ${Object.keys(report.blocked).length}`);
  row(
    'exits',
    `${String(report.unexpectedExits.length)} processes exited on their own; SIGTERM at the end: ${stopText(report)}`,
  );

  lines.push('');
  const header = ['destination', 'accepted', 'delivered', 'lost', 'reordered', 'redelivered', 'p99 ms', 'max ms'];
  const table = report.verdicts.map((v) => [
    v.destination,
    n(v.accepted),
    n(v.delivered),
    n(v.lost.length),
    n(v.reordered + v.staleRepeats),
    n(v.redelivered),
    n(v.latencyMs.p99),
    n(v.latencyMs.max),
  ]);
  const widths = header.map((h, k) => Math.max(h.length, ...table.map((t) => t[k]!.length)));
  const format = (cells: string[]): string =>
    '  ' + cells.map((c, k) => (k === 0 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  ');
  lines.push(format(header), ...table.map(format));

  if (!report.passed) {
    lines.push('', 'FAILED because:', ...report.failures.map((f) => `  - ${f}`));
    for (const v of report.verdicts) {
      if (v.examples.length > 0) lines.push(`  ${v.destination}:`, ...v.examples.map((e) => `    ${e}`));
    }
    for (const text of load.inconsistent.slice(0, 10)) lines.push(`  client: ${text}`);
    for (const rejected of load.rejected.slice(0, 5))
      lines.push(`  rejected: message ${String(rejected.index)}: HTTP ${String(rejected.status)} ${rejected.body}`);
    for (const exit of report.unexpectedExits.slice(0, 5)) {
      lines.push(`  ${exit.label} (pid ${String(exit.pid)}) exited with ${String(exit.code)}; its last lines:`);
      lines.push(...exit.lastLines.slice(-8).map((l) => `    ${l.slice(0, 300)}`));
    }
  }
  const where = relative(process.cwd(), report.outDir);
  lines.push('', `  app logs, 202 answers and every delivery: ${where.startsWith('..') ? report.outDir : where}`);
  return lines.join('\n');
}

function stopText(report: ChaosReport): string {
  const unclean = report.stopCodes.filter((c) => c.code !== 0);
  if (unclean.length === 0) return `all ${String(report.stopCodes.length)} exited 0`;
  return unclean.map((c) => `${c.label} exited ${String(c.code)}`).join(', ');
}
