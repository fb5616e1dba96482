/**
 * The five scenarios of the benchmark and the runs each one is made of: which system, over
 * which protocols, with how many destinations, workers and transforms, at what load. `quick`
 * shortens every run (and drops the largest worker counts) for development.
 */
import { medianMs, type DurationModel } from './plan.js';
import type { RedisTopology } from './topology.js';

export const SCENARIOS = ['seed', 'load', 'ceiling', 'scaling', 'tail'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** The kinds of system a run can drive. */
export type SystemKind = 'reseq' | 'sequential' | 'bullmq' | 'groupmq' | 'limit';

/** One system under test, as configured for a run. */
export interface SystemSpec {
  /** Name in the results: `reseq`, `reseq+hedge`, `reseq+batch`, `reseq+ahead`, `sequential`, `bullmq`, `groupmq`, `limit`. */
  id: string;
  kind: SystemKind;
  /** Worker processes (reseq's transform-workers; BullMQ's and groupmq's worker programs). */
  workers: number;
  /** Transforms in flight per worker process. */
  concurrency: number;
  /** reseq: `worker.hedgeAfterMs` in the config file (a feature that may not exist yet). */
  hedgeAfterMs?: number;
  /** reseq: `batch.maxMessages` on every HTTP destination (a feature that may not exist yet). */
  httpBatch?: number;
  /** reseq: `sender.recordAhead` in the config file (a feature that may not exist yet). */
  recordAhead?: boolean;
  /** reseq: shards and cluster masters (`--shards`, `--cluster-masters`); one shard on one redis-server when absent. */
  topology?: RedisTopology;
}

/** How the producer offers load. */
export type LoadShape =
  /** An even pace, whether or not the system keeps up. */
  | { kind: 'rate'; perSecond: number }
  /** As fast as it goes: at most `outstanding` messages sent and not yet delivered. */
  | { kind: 'closed'; outstanding: number };

/** One run: one system in one configuration of a scenario. */
export interface RunSpec {
  scenario: ScenarioName;
  /** Distinguishes runs of one scenario besides the system (`tcp, 64 destinations`, `4 workers`). */
  variant: string;
  system: SystemSpec;
  ingest: 'http' | 'tcp';
  sink: 'http' | 'tcp';
  destinations: number;
  durations: DurationModel;
  load: LoadShape;
  /** How long the producer offers messages, warm-up included, in ms. */
  durationMs: number;
  /** Messages accepted in the first `warmupMs` are delivered and checked but left out of the statistics. */
  warmupMs: number;
  /** After the producer stops, how long to wait for the last deliveries before giving up, in ms. */
  drainMs: number;
  /** HTTP: keep-alive connections; TCP: pipelined connections. */
  connections: number;
  /** Seed of the message plan (durations). */
  seed: number;
  /** Scaling: workers × concurrency / transform time, in messages per second. */
  idealThroughput?: number;
  /** Keep per-message latency for the plot. */
  keepSeries: boolean;
}

const SEED = 20240611;

/** The runs of a scenario, in the order they are run. */
export function scenarioRuns(name: ScenarioName, quick: boolean): RunSpec[] {
  const q = <T>(full: T, short: T): T => (quick ? short : full);
  switch (name) {
    case 'seed': {
      const concurrency = 16;
      return baselinesAnd([reseq(1, concurrency)], concurrency, 1, true).map((system) => ({
        scenario: name,
        variant: '',
        system,
        ingest: 'http',
        sink: 'http',
        destinations: 1,
        durations: { kind: 'fixed', ms: 750 },
        load: { kind: 'rate', perSecond: 4 },
        durationMs: q(60_000, 8_000),
        warmupMs: 0,
        drainMs: q(30_000, 8_000),
        connections: 4,
        seed: SEED,
        keepSeries: true,
      }));
    }
    case 'load': {
      const concurrency = 1000;
      const systems = [reseq(1, concurrency), { ...reseq(1, concurrency), id: 'reseq+ahead', recordAhead: true }];
      return baselinesAnd(systems, concurrency, 50, true).map((system) => ({
        scenario: name,
        variant: '',
        system,
        ingest: 'http',
        sink: 'http',
        destinations: 50,
        durations: { kind: 'uniform', minMs: 500, maxMs: 1000 },
        load: { kind: 'rate', perSecond: 1000 },
        // A minute measured after a 10 s warm-up: five processes started cold at 1,000 msg/s take
        // a few seconds to settle (JIT; the producer catching up on its schedule in a burst).
        durationMs: q(70_000, 8_000),
        warmupMs: q(10_000, 1_000),
        drainMs: q(30_000, 5_000),
        connections: 64,
        seed: SEED,
        keepSeries: false,
      }));
    }
    case 'ceiling': {
      const concurrency = 128;
      const runs: RunSpec[] = [];
      for (const protocol of ['tcp', 'http'] as const) {
        for (const destinations of [1, 64]) {
          const systems = [reseq(1, concurrency)];
          if (protocol === 'http') systems.push({ ...reseq(1, concurrency), id: 'reseq+batch', httpBatch: 64 });
          for (const system of baselinesAnd(systems, concurrency, destinations, false)) {
            runs.push({
              scenario: name,
              variant: `${protocol}, ${destinations} dest`,
              system,
              ingest: protocol,
              sink: protocol,
              destinations,
              durations: { kind: 'noop' },
              load: { kind: 'closed', outstanding: protocol === 'tcp' ? 4000 : 1000 },
              durationMs: q(15_000, 3_000),
              warmupMs: q(2_000, 500),
              drainMs: q(20_000, 5_000),
              connections: protocol === 'tcp' ? 8 : 128,
              seed: SEED,
              keepSeries: false,
            });
          }
        }
      }
      return runs;
    }
    case 'scaling': {
      const concurrency = 32;
      const transformMs = 1000;
      return q([1, 2, 4, 8], [1, 2]).map((workers) => ({
        scenario: name,
        variant: `${workers} worker${workers === 1 ? '' : 's'}`,
        system: reseq(workers, concurrency),
        ingest: 'http',
        sink: 'http',
        destinations: 16,
        durations: { kind: 'fixed', ms: transformMs },
        // Twice what the workers can hold: a transform slot never waits for the producer.
        load: { kind: 'closed', outstanding: 2 * workers * concurrency },
        durationMs: q(20_000, 6_000),
        warmupMs: 0,
        drainMs: q(15_000, 5_000),
        connections: 32,
        seed: SEED,
        idealThroughput: (workers * concurrency * 1000) / transformMs,
        keepSeries: false,
      }));
    }
    case 'tail': {
      // Two worker processes: a hedge runs on another worker than the attempt it hedges.
      const workers = 2;
      const concurrency = 50;
      const destinations = 20;
      const durations: DurationModel = { kind: 'tail', minMs: 200, maxMs: 300, share: 0.01, factor: 10 };
      const hedged: SystemSpec = {
        ...reseq(workers, concurrency),
        id: 'reseq+hedge',
        hedgeAfterMs: 2 * medianMs(durations),
      };
      const systems: SystemSpec[] = [
        reseq(workers, concurrency),
        hedged,
        bullmq(concurrency, workers),
        groupmq(concurrency, destinations, workers),
      ];
      return systems.map((system) => ({
        scenario: name,
        variant: '',
        system,
        ingest: 'http',
        sink: 'http',
        destinations,
        durations,
        load: { kind: 'rate', perSecond: 200 },
        durationMs: q(30_000, 8_000),
        warmupMs: q(2_000, 1_000),
        drainMs: q(20_000, 8_000),
        connections: 32,
        seed: SEED,
        keepSeries: false,
      }));
    }
  }
}

/** Every run of the given scenarios, in order. */
export function allRuns(names: readonly ScenarioName[], quick: boolean): RunSpec[] {
  return names.flatMap((name) => scenarioRuns(name, quick));
}

function reseq(workers: number, concurrency: number): SystemSpec {
  return { id: 'reseq', kind: 'reseq', workers, concurrency };
}

function bullmq(concurrency: number, workers = 1): SystemSpec {
  return { id: 'bullmq', kind: 'bullmq', workers, concurrency };
}

/**
 * groupmq runs at most one job per group (destination), so a concurrency above the number of
 * destinations adds nothing but idle slots, and those poll Redis in a tight loop while a job is
 * in progress (34,000 commands per message were seen at concurrency 16 with one group). Its
 * concurrency is capped at the number of destinations (shared among its workers), which is all
 * it can use.
 */
function groupmq(concurrency: number, destinations: number, workers = 1): SystemSpec {
  return {
    id: 'groupmq',
    kind: 'groupmq',
    workers,
    concurrency: Math.min(concurrency, Math.ceil(destinations / workers)),
  };
}

/** The given reseq systems, then the baselines at the same concurrency, then the in-memory limit. */
function baselinesAnd(
  systems: SystemSpec[],
  concurrency: number,
  destinations: number,
  withSequential: boolean,
): SystemSpec[] {
  return [
    ...systems,
    ...(withSequential ? [{ id: 'sequential', kind: 'sequential', workers: 1, concurrency: 1 } as const] : []),
    bullmq(concurrency),
    groupmq(concurrency, destinations),
    { id: 'limit', kind: 'limit', workers: 0, concurrency: 0 },
  ];
}
