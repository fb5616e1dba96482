/**
 * `pnpm bench`: runs the scenarios (all, or `--scenario <name>`), each system in turn on this
 * machine, then prints the results table and writes `bench/results/<timestamp>.json` (and the
 * seed plot as SVG). Exits 1 when a run failed, 2 on a bad command line or a missing build; a
 * missed target is reported, never an exit status (targets are figures, not assertions).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { buildBaselines } from './build-baselines.js';
import { BenchUsageError, parseOptions, usage, type BenchOptions } from './options.js';
import { seedPlot } from './plot.js';
import { ROOT } from './processes.js';
import { checkTargets, formatDuration, formatTable, formatTargets, formatUsage } from './report.js';
import { runOne, type RunResult } from './run.js';
import { allRuns } from './scenarios.js';
import { applyTopology, describeTopology, isDefaultTopology, systemLabel, topologyNote } from './topology.js';

let options: BenchOptions | 'help';
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  console.error(`${err instanceof BenchUsageError ? err.code : 'BENCH_ERROR'}: ${(err as Error).message}`);
  console.error(usage());
  process.exit(2);
}
if (options === 'help') {
  console.log(usage());
  process.exit(0);
}

const missing = ['ingest', 'transform-worker', 'resequencer-sender']
  .map((app) => join(ROOT, 'apps', app, 'dist', 'main.js'))
  .filter((file) => !existsSync(file));
if (missing.length > 0) {
  console.error(
    `BENCH_NOT_BUILT: ${missing.map((f) => relative(ROOT, f)).join(', ')} missing; run \`pnpm build\` first`,
  );
  process.exit(2);
}
if (spawnSync('redis-server', ['--version']).status !== 0) {
  console.error('BENCH_NO_REDIS: `redis-server` is not on PATH (`sudo apt-get install -y redis-server`)');
  process.exit(2);
}
if (options.topology.clusterMasters > 0 && spawnSync('redis-cli', ['--version']).status !== 0) {
  console.error('BENCH_NO_REDIS: `redis-cli` (which creates the cluster) is not on PATH; it comes with redis-server');
  process.exit(2);
}

// Interrupted: exit at once; every process started is SIGKILLed by the exit hook in processes.ts.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

await buildBaselines();
const { systems: selected, variants } = options;
const runs = applyTopology(
  allRuns(options.scenarios, options.quick).filter(
    (r) => (!selected || selected.includes(r.system.id)) && (!variants || variants.includes(r.variant)),
  ),
  options.topology,
);
const outDir = resolve(options.outDir ?? join(ROOT, 'bench', 'results'));
const startedAt = new Date();
const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
const command = `pnpm bench ${process.argv.slice(2).join(' ')}`.trim();
const log = (line: string): void => console.log(line);

log(`reseq bench: ${runs.length} runs (${options.scenarios.join(', ')}${options.quick ? ', quick' : ''})`);
log(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
if (!isDefaultTopology(options.topology)) {
  const reseqRuns = runs.filter((r) => r.system.kind === 'reseq').length;
  log(
    `redis: reseq on ${describeTopology(options.topology)}` +
      (reseqRuns === 0 ? ' (no reseq run selected: nothing uses it)' : '') +
      '; the baselines on one redis-server, as always',
  );
  const note = topologyNote(options.topology);
  if (note !== undefined) log(`note: ${note}`);
}
const results: RunResult[] = [];
for (const [i, spec] of runs.entries()) {
  const name = spec.variant === '' ? spec.scenario : `${spec.scenario} (${spec.variant})`;
  log(`[${i + 1}/${runs.length}] ${name}: ${systemLabel(spec.system.id, spec.system.topology)}`);
  const tracePath = options.trace
    ? join(
        outDir,
        `${stamp}-${[spec.scenario, spec.variant, spec.system.id]
          .filter(Boolean)
          .join('-')
          .replace(/[^a-z0-9+]+/gi, '-')}.csv`,
      )
    : undefined;
  if (tracePath !== undefined) await mkdir(outDir, { recursive: true });
  const result = await runOne(spec, log, tracePath);
  results.push(result);
  if (result.skipped) log(`    skipped: ${result.skipped}`);
  else if (result.failed) log(`    FAILED: ${result.failed}`);
  else {
    const t = result.trace!;
    log(
      `    ${t.delivered}/${t.accepted} delivered, ${t.throughputPerSecond.toFixed(t.throughputPerSecond < 10 ? 1 : 0)} msg/s, ` +
        `latency p50 ${formatDuration(t.latencyMs.p50)} p99 ${formatDuration(t.latencyMs.p99)}, ` +
        `overhead p99 ${formatDuration(t.overheadMs.p99)}, ${t.orderViolations} order violations`,
    );
  }
}

const checks = checkTargets(results);
log('');
log(formatTable(results));
log('');
log(formatUsage(results));
log('');
log(formatTargets(checks));

await mkdir(outDir, { recursive: true });
const jsonPath = join(outDir, `${stamp}.json`);
const document = {
  version: 1,
  command,
  quick: options.quick,
  /** reseq's shards and cluster masters (each reseq run's spec has it too); the baselines ran on one redis-server. */
  topology: options.topology,
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryMB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    redis: spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim(),
    loadAverageAtEnd: loadavg(),
  },
  targets: checks,
  results,
};
// Infinity (never delivered) has no JSON form: it is written as null.
await writeFile(
  jsonPath,
  JSON.stringify(document, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2),
);
log('');
log(`results: ${relative(process.cwd(), jsonPath)}`);

const svg = seedPlot(results, `${command}, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
if (svg !== undefined) {
  const svgPath = join(outDir, `${stamp}-seed.svg`);
  await writeFile(svgPath, svg);
  log(`plot:    ${relative(process.cwd(), svgPath)}`);
  if (!options.quick && selected === undefined) {
    // The plot bench/README.md shows: only from a full seed run.
    await writeFile(join(ROOT, 'bench', 'seed-latency.svg'), svg);
    log(`plot:    ${relative(process.cwd(), join(ROOT, 'bench', 'seed-latency.svg'))} (the one bench/README.md shows)`);
  }
}
process.exitCode = results.some((r) => r.failed !== undefined) ? 1 : 0;
