/**
 * One run: sinks, a fresh Redis and the system; the producer for the run's duration; the drain;
 * then CPU, memory and Redis commands are read before anything stops, and the trace is analysed.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { diffCommandStats, summarizeCommands, type CommandStat, type CommandSummary } from './commandstats.js';
import { planMessage, type PlannedMessage } from './plan.js';
import { sampleProcess, type ProcSample } from './proc-stats.js';
import { runProducer, type ProducerStats } from './producer.js';
import { now, Recorder } from './recorder.js';
import type { RunSpec } from './scenarios.js';
import { startHttpSink, startTcpSink, type Sink } from './sinks.js';
import { configFileOf, destinationName, featureOf, startSystem, supports } from './systems.js';
import { analyzeTrace, type PerMessage, type TraceAnalysis, type TracedMessage } from './trace.js';

/** CPU and peak memory of one process over the measured part of a run. */
export interface ProcessUsage {
  cpuSeconds: number;
  cpuMsPerMessage: number;
  peakRssMB: number | undefined;
}

/** The result of one run (one line of the table). */
export interface RunResult {
  scenario: string;
  variant: string;
  system: string;
  spec: Omit<RunSpec, 'keepSeries'>;
  /** Why the run did not happen (a feature this build lacks) or failed. */
  skipped?: string;
  failed?: string;
  producer?: ProducerStats & { rejected: Record<string, number> };
  trace?: TraceAnalysis & { unreadable: number; misrouted: number };
  redis?: CommandSummary;
  /** By process label, plus `redis` and `client` (the harness: producer and sinks). */
  usage?: Record<string, ProcessUsage>;
  /** CPU ms per message of the system's processes and its Redis together. */
  cpuMsPerMessage?: number;
  /** Sum of the peak resident sets of the system's processes and its Redis. */
  peakRssMB?: number;
  exitCodes?: Record<string, number | string>;
  /** Scaling: the ideal throughput, and the fraction of it reached. */
  idealThroughput?: number;
  fractionOfIdeal?: number;
  /** Per message in accept order (plot data; seed only): seconds since the first accept, latency and ideal latency in ms (null: never delivered). */
  series?: { t: number; latency: number | null; ideal: number }[];
}

/** Runs one spec. Never throws: a failure is recorded in the result. `tracePath`: write the per-message CSV there. */
export async function runOne(spec: RunSpec, log: (line: string) => void, tracePath?: string): Promise<RunResult> {
  const { keepSeries, ...specOut } = spec;
  const base = { scenario: spec.scenario, variant: spec.variant, system: spec.system.id, spec: specOut };
  const feature = featureOf(spec);
  if (feature && !supports(feature)) {
    const option = {
      hedge: 'worker.hedgeAfterMs',
      batch: 'destination batch.maxMessages',
      ahead: 'sender.recordAhead',
    }[feature];
    return { ...base, skipped: `this build's config does not accept ${option} yet` };
  }
  const dir = await mkdtemp(join(tmpdir(), 'reseq-bench-run-'));
  const recorder = new Recorder();
  const names = Array.from({ length: spec.destinations }, (_, i) => destinationName(i));
  let sink: Sink | undefined;
  let system: Awaited<ReturnType<typeof startSystem>> | undefined;
  try {
    sink = spec.sink === 'http' ? await startHttpSink(recorder) : await startTcpSink(recorder, names);
    const configPath = join(dir, 'reseq.json');
    const targets = names.map((_, i) => sink!.destination(i));
    await writeFile(configPath, JSON.stringify(configFileOf(spec, targets), null, 2));
    const markDir = join(dir, 'marks');
    await mkdir(markDir);
    system = await startSystem(spec, { configPath, destinations: names, markDir });

    const pids = new Map(system.processes.map((p) => [p.label, p.pid]));
    for (const [label, pid] of system.redis?.pids ?? []) pids.set(label, pid);
    await system.redis?.resetStats();
    const statsBefore = (await system.redis?.commandStats()) ?? new Map<string, CommandStat>();
    const before = await sampleAll(pids);
    const clientBefore = process.cpuUsage();

    const plan = (k: number): PlannedMessage => planMessage(k, spec.durations, spec.destinations, spec.seed);
    const producer = await runProducer({
      protocol: spec.ingest,
      httpPort: system.httpPort,
      tcpPort: system.tcpPort,
      destinations: names,
      plan,
      load: spec.load,
      durationMs: spec.durationMs,
      connections: spec.connections,
      recorder,
    });
    const drainDeadline = now() + spec.drainMs;
    while (!recorder.allAcceptedReceived() && now() < drainDeadline) await sleep(20);
    recorder.freeze();

    const after = await sampleAll(pids);
    const clientCpu = process.cpuUsage(clientBefore);
    const statsAfter = await system.redis?.commandStats();
    const exitCodes = await system.stop();
    system = undefined;

    // The limit runs no transform: its ideal is the accept time itself.
    const traced =
      spec.system.kind === 'limit' ? recorder.messages.map((m) => ({ ...m, plannedMs: 0 })) : recorder.messages;
    const { analysis, perMessage } = analyzeTrace({
      messages: traced,
      deliveryK: recorder.deliveryK,
      deliveryAt: recorder.deliveryAt,
      measureFrom: producer.startedAt + spec.warmupMs,
    });
    const messages = Math.max(1, analysis.accepted);
    const usage: Record<string, ProcessUsage> = {};
    let cpu = 0;
    let rss = 0;
    for (const [label, sample] of after) {
      const cpuSeconds = sample.cpuSeconds - (before.get(label)?.cpuSeconds ?? 0);
      const peakRssMB = sample.peakRssBytes === undefined ? undefined : sample.peakRssBytes / 2 ** 20;
      usage[label] = { cpuSeconds, cpuMsPerMessage: (cpuSeconds * 1000) / messages, peakRssMB };
      cpu += cpuSeconds;
      rss += peakRssMB ?? 0;
    }
    const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
    usage.client = {
      cpuSeconds: clientSeconds,
      cpuMsPerMessage: (clientSeconds * 1000) / messages,
      peakRssMB: undefined,
    };
    const result: RunResult = {
      ...base,
      producer: { ...producer, rejected: Object.fromEntries(recorder.rejected) },
      trace: { ...analysis, unreadable: recorder.unreadable, misrouted: recorder.misrouted },
      redis: statsAfter ? summarizeCommands(diffCommandStats(statsBefore, statsAfter), messages) : undefined,
      usage,
      cpuMsPerMessage: (cpu * 1000) / messages,
      peakRssMB: rss,
      exitCodes,
    };
    if (spec.idealThroughput !== undefined) {
      result.idealThroughput = spec.idealThroughput;
      result.fractionOfIdeal = analysis.throughputPerSecond / spec.idealThroughput;
    }
    if (keepSeries) result.series = seriesOf(recorder, perMessage);
    if (tracePath !== undefined) await writeFile(tracePath, traceCsv(traced, perMessage));
    if (analysis.undelivered > 0) {
      log(`    ${analysis.undelivered} accepted messages were not delivered within the drain time`);
    }
    return result;
  } catch (err) {
    return { ...base, failed: err instanceof Error ? err.message : String(err) };
  } finally {
    await system?.stop().catch(() => undefined);
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function sampleAll(pids: ReadonlyMap<string, number>): Promise<Map<string, ProcSample>> {
  const samples = new Map<string, ProcSample>();
  for (const [label, pid] of pids) {
    const sample = await sampleProcess(pid);
    if (sample) samples.set(label, sample);
  }
  return samples;
}

function seriesOf(recorder: Recorder, perMessage: PerMessage): NonNullable<RunResult['series']> {
  const accepted = recorder.messages
    .map((m, k) => ({ k, at: m.acceptedAt }))
    .filter((m): m is { k: number; at: number } => m.at !== undefined)
    .sort((a, b) => a.at - b.at);
  const t0 = accepted[0]?.at ?? 0;
  return accepted.map(({ k, at }) => {
    const delivered = perMessage.deliveredAt[k]!;
    return {
      t: round((at - t0) / 1000, 3),
      latency: Number.isNaN(delivered) ? null : round(delivered - at, 1),
      ideal: round(perMessage.idealAt[k]! - at, 1),
    };
  });
}

/** One line per message: k, destination, sequence, planned ms, accepted, delivered, ideal (ms since the epoch). */
function traceCsv(messages: readonly TracedMessage[], perMessage: PerMessage): string {
  const lines = ['k,destination,sequence,plannedMs,acceptedAt,deliveredAt,idealAt'];
  const time = (t: number | undefined): string => (t === undefined || Number.isNaN(t) ? '' : t.toFixed(3));
  messages.forEach((m, k) => {
    lines.push(
      [
        k,
        m.destination,
        m.sequence ?? '',
        m.plannedMs,
        time(m.acceptedAt),
        time(perMessage.deliveredAt[k]),
        time(perMessage.idealAt[k]),
      ].join(','),
    );
  });
  return `${lines.join('\n')}\n`;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
