import { describe, expect, it } from 'vitest';
import { seedPlot, ticks } from './plot.js';
import { checkTargets, formatDuration, formatMs, formatTable, throughputRatio } from './report.js';
import type { RunResult } from './run.js';
import { scenarioRuns } from './scenarios.js';
import type { TraceAnalysis } from './trace.js';

const trace = (over: Partial<TraceAnalysis>): RunResult['trace'] => ({
  accepted: 100,
  measured: 100,
  delivered: 100,
  undelivered: 0,
  duplicates: 0,
  unknown: 0,
  orderViolations: 0,
  latencyMs: { count: 100, p50: 750, p99: 760, max: 770 },
  deliveredLatencyMs: { count: 100, p50: 750, p99: 760, max: 770 },
  overheadMs: { count: 100, p50: 1, p99: 12, max: 15 },
  throughputPerSecond: 1000,
  firstAcceptAt: 0,
  lastDeliveryAt: 1000,
  unreadable: 0,
  misrouted: 0,
  ...over,
});

/** A result of the run of `system` in `scenario`/`variant`, with the given trace. */
function result(
  scenario: 'load' | 'ceiling' | 'scaling' | 'seed',
  variant: string,
  system: string,
  t?: Partial<TraceAnalysis>,
  extra: Partial<RunResult> = {},
): RunResult {
  const spec = scenarioRuns(scenario, false).find((r) => r.variant === variant && r.system.id === system)!;
  const { keepSeries: _, ...specOut } = spec;
  return { scenario, variant, system, spec: specOut, trace: t ? trace(t) : undefined, ...extra };
}

describe('the results table', () => {
  it('formats durations: ms, seconds past 10 s, ∞ for never delivered', () => {
    expect(formatMs(4.25)).toBe('4.3');
    expect(formatMs(752.4)).toBe('752');
    expect(formatMs(16_400)).toBe('16.4 s');
    expect(formatMs(Infinity)).toBe('∞');
    expect(formatMs(NaN)).toBe('–');
    expect([formatDuration(4.25), formatDuration(16_400), formatDuration(Infinity)]).toEqual(['4.3 ms', '16.4 s', '∞']);
  });

  it('shows skipped and failed runs with their reason, and the ratio to the limit only for unpaced runs', () => {
    const results = [
      result('ceiling', 'tcp, 64 dest', 'reseq', { throughputPerSecond: 20_000 }),
      result('ceiling', 'tcp, 64 dest', 'limit', { throughputPerSecond: 40_000 }),
      result('ceiling', 'http, 1 dest', 'reseq+batch', undefined, { skipped: 'no batch yet' }),
      result('seed', '', 'reseq', {}),
      result('seed', '', 'limit', { throughputPerSecond: 4 }),
      result('seed', '', 'groupmq', undefined, { failed: 'front exited (1)\nlast lines' }),
    ];
    const table = formatTable(results).split('\n');
    expect(table[2]).toMatch(/\| 0\.50 +\|$/);
    expect(table[4]).toContain('skipped: no batch yet');
    expect(table[5]).toMatch(/\| +\|$/);
    expect(table[7]).toContain('FAILED: front exited (1) ');
    expect(throughputRatio(results, results[0]!, 'limit')).toBe(0.5);
    expect(throughputRatio(results, results[0]!, 'bullmq')).toBeUndefined();
  });
});

describe('the targets', () => {
  it('are checked against the runs that measure them, and say when a run is missing', () => {
    const checks = checkTargets([
      result('load', '', 'reseq', { orderViolations: 0, overheadMs: { count: 1, p50: 2, p99: 25, max: 30 } }),
      result('ceiling', 'tcp, 64 dest', 'reseq', { throughputPerSecond: 21_000 }),
      result('ceiling', 'tcp, 64 dest', 'bullmq', { throughputPerSecond: 7_000 }),
      result('ceiling', 'tcp, 64 dest', 'groupmq', { throughputPerSecond: 30_000 }),
    ]);
    expect(checks.map((c) => c.met)).toEqual([true, false, true, true, false, undefined]);
    expect(checks[1]!.measured).toBe('25.0 ms');
    expect(checks[4]!.measured).toBe('ratio 0.70');
    expect(checks[5]!.measured).toBe('not run');
  });

  it('add the load target for reseq+ahead when it ran, and count its order violations against it', () => {
    const overheadMs = { count: 1, p50: 1, p99: 15, max: 30 };
    const ahead = (orderViolations: number) =>
      checkTargets([result('load', '', 'reseq+ahead', { orderViolations, overheadMs })]).find((c) =>
        c.target.includes('recordAhead'),
      );
    expect(ahead(0)).toMatchObject({ measured: '15.0 ms', met: true });
    expect(ahead(3)?.met).toBe(false);
    expect(checkTargets([]).some((c) => c.target.includes('recordAhead'))).toBe(false);
  });
});

describe('the load scenario', () => {
  it('runs reseq with and without sender.recordAhead next to the baselines', () => {
    const systems = scenarioRuns('load', true).map((run) => run.system);
    expect(systems.map((s) => s.id)).toEqual(['reseq', 'reseq+ahead', 'sequential', 'bullmq', 'groupmq', 'limit']);
    expect(systems.filter((s) => s.recordAhead).map((s) => s.id)).toEqual(['reseq+ahead']);
  });
});

describe('the seed plot', () => {
  it('has round ticks', () => {
    expect(ticks(0, 1000)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(ticks(0, 47)).toEqual([0, 10, 20, 30, 40]);
  });

  it('draws reseq, sequential and the ideal, and says how many were never delivered', () => {
    const series = (latency: (i: number) => number | null): RunResult['series'] =>
      Array.from({ length: 8 }, (_, i) => ({ t: i * 0.25, latency: latency(i), ideal: 750 }));
    const svg = seedPlot(
      [
        result('seed', '', 'reseq', {}, { series: series(() => 752) }),
        result('seed', '', 'sequential', {}, { series: series((i) => (i < 6 ? 750 + 500 * i : null)) }),
      ],
      'test run',
    )!;
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<polyline /g)).toHaveLength(5);
    expect(svg).toContain('sequential (one BullMQ worker, concurrency 1) (2 not delivered by the end of the run)');
    expect(svg).toContain('ideal ordered latency');
    expect(seedPlot([result('seed', '', 'limit', {})], 'x')).toBeUndefined();
  });
});
