/**
 * Starting the systems under test for a run, each with its own fresh Redis: reseq's three apps
 * (as the contract starts them), the BullMQ and groupmq baselines (a front process and worker
 * processes), and the in-memory limit (one process, no Redis).
 */
import { join } from 'node:path';
import { parseConfig } from '@reseq/config';
import { baselineProgram, freePort, reseqApp, ROOT, spawnProcess, type BenchProcess } from './processes.js';
import { startBenchCluster } from './cluster.js';
import { startBenchRedis, type BenchRedis } from './redis.js';
import type { RunSpec } from './scenarios.js';
import { DEFAULT_TOPOLOGY, topologyEnv } from './topology.js';

export const TRANSFORM_MODULE = join(ROOT, 'bench', 'transforms', 'planned.mjs');

/** A started system. */
export interface RunningSystem {
  httpPort: number;
  tcpPort: number;
  processes: BenchProcess[];
  redis: BenchRedis | undefined;
  /** SIGTERMs every process (then stops Redis); the exit code of each, by label. */
  stop(): Promise<Record<string, number | string>>;
}

/** What a system needs besides its spec. */
export interface SystemContext {
  /** The run's config file (reseq's format; the baselines read its destinations). */
  configPath: string;
  destinations: readonly string[];
  /** The heavy-tail marker directory of the transform. */
  markDir: string;
}

/** Optional reseq features this build may not have yet. */
export type Feature = 'hedge' | 'batch' | 'ahead';

/** Whether this build's config schema accepts a feature's option (so a run can use it). */
export function supports(feature: Feature): boolean {
  const file =
    feature === 'hedge'
      ? { worker: { hedgeAfterMs: 500 } }
      : feature === 'ahead'
        ? { sender: { recordAhead: true } }
        : { destinations: { d: { type: 'http', url: 'http://127.0.0.1:1/', batch: { maxMessages: 2 } } } };
  try {
    parseConfig({}, file);
    return true;
  } catch {
    return false;
  }
}

/** The feature a run needs, if any. */
export function featureOf(spec: RunSpec): Feature | undefined {
  if (spec.system.hedgeAfterMs !== undefined) return 'hedge';
  if (spec.system.httpBatch !== undefined) return 'batch';
  if (spec.system.recordAhead) return 'ahead';
  return undefined;
}

/** The config file of a run: the sinks as destinations, plus the system's reseq options. */
export function configFileOf(spec: RunSpec, targets: readonly Record<string, unknown>[]): Record<string, unknown> {
  const destinations = Object.fromEntries(
    targets.map((target, i) => [
      destinationName(i),
      spec.system.httpBatch !== undefined && target.type === 'http'
        ? { ...target, batch: { maxMessages: spec.system.httpBatch } }
        : target,
    ]),
  );
  const file: Record<string, unknown> = { destinations };
  if (spec.system.hedgeAfterMs !== undefined) file.worker = { hedgeAfterMs: spec.system.hedgeAfterMs };
  if (spec.system.recordAhead) file.sender = { recordAhead: true };
  return file;
}

/** Destination `i`'s name. */
export function destinationName(i: number): string {
  return `d${i}`;
}

/** Starts the system of `spec`; on failure, whatever started is stopped again. */
export async function startSystem(spec: RunSpec, context: SystemContext): Promise<RunningSystem> {
  const processes: BenchProcess[] = [];
  let redis: BenchRedis | undefined;
  const stop = async (): Promise<Record<string, number | string>> => {
    const codes = await Promise.all(processes.map(async (p) => [p.label, await p.stop()] as const));
    await redis?.stop();
    return Object.fromEntries(codes);
  };
  const start = async (options: Parameters<typeof spawnProcess>[0]): Promise<BenchProcess> => {
    const started = await spawnProcess(options);
    processes.push(started);
    return started;
  };
  try {
    const { system } = spec;
    if (system.kind === 'limit') {
      const limit = await start({
        label: 'limit',
        args: baselineProgram('limit'),
        env: { BENCH_CONFIG: context.configPath, HTTP_PORT: '0', TCP_PORT: '0' },
        readyMsg: 'ready',
      });
      return { ...ports(limit), processes, redis, stop };
    }
    // reseq on the run's topology (a cluster with --cluster-masters); the baselines on one redis-server.
    const topology = (system.kind === 'reseq' ? system.topology : undefined) ?? DEFAULT_TOPOLOGY;
    redis = topology.clusterMasters > 0 ? await startBenchCluster(topology.clusterMasters) : await startBenchRedis();
    const common = { REDIS_URL: redis.url };
    const workerEnv = (n: number): Record<string, string> => ({
      ...common,
      WORKER_CONCURRENCY: String(system.concurrency),
      TRANSFORM_MODULE,
      BENCH_MARK_DIR: context.markDir,
      RESEQ_CONSUMER_NAME: `bench-worker-${n}`,
    });
    const workerNumbers = Array.from({ length: system.workers }, (_, i) => i + 1);

    if (system.kind === 'reseq') {
      const reseqEnv = {
        ...common,
        ...topologyEnv(topology, redis.clusterSeeds),
        RESEQ_CONFIG: context.configPath,
        RESEQ_PREFIX: 'bench',
        LOG_LEVEL: 'info',
      };
      const tcpPort = spec.ingest === 'tcp' ? await freePort() : 0;
      const [ingest, , sender] = await Promise.all([
        start({
          label: 'ingest',
          args: reseqApp('ingest'),
          env: { ...reseqEnv, HTTP_PORT: '0', TCP_PORT: String(tcpPort) },
          readyMsg: 'ingest listening',
        }),
        Promise.all(
          workerNumbers.map((n) =>
            start({
              label: `worker-${n}`,
              args: reseqApp('transform-worker'),
              env: { ...reseqEnv, ...workerEnv(n) },
              readyMsg: 'transform worker started',
            }),
          ),
        ),
        start({
          label: 'sender',
          args: reseqApp('resequencer-sender'),
          env: reseqEnv,
          readyMsg: 'resequencer-sender started',
        }),
      ]);
      // Deliveries start once the sender holds every destination's lease.
      await sender.waitForLogs('lane active', context.destinations.length);
      return { httpPort: Number(ingest.readyLine.port), tcpPort, processes, redis, stop };
    }

    const kind = system.kind === 'groupmq' ? 'groupmq' : 'bullmq';
    const baselineEnv = { ...common, BENCH_CONFIG: context.configPath };
    const [front] = await Promise.all([
      start({
        label: 'front',
        args: baselineProgram('front', kind),
        env: { ...baselineEnv, HTTP_PORT: '0', TCP_PORT: '0' },
        readyMsg: 'ready',
      }),
      ...workerNumbers.map((n) =>
        start({
          label: `worker-${n}`,
          args: baselineProgram('worker', kind),
          env: { ...baselineEnv, ...workerEnv(n) },
          readyMsg: 'ready',
        }),
      ),
    ]);
    return { ...ports(front), processes, redis, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

function ports(process: BenchProcess): { httpPort: number; tcpPort: number } {
  return { httpPort: Number(process.readyLine.httpPort), tcpPort: Number(process.readyLine.tcpPort) };
}
