/**
 * One chaos run, start to verdict: a private Redis with AOF (`appendfsync always`), an HTTP sink
 * per destination, the real apps as processes (see fleet.ts), the load (load.ts) and the chaos
 * (monkey.ts) at once; then it waits for the last deliveries, stops the apps with SIGTERM, and
 * checks every destination (verify.ts). `pnpm test:chaos` and the short test both call it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeySchema } from '@reseq/store';
import { Redis } from 'ioredis';
import { fixturePath, writeConfig, type TempConfig } from '../fixtures/apps.js';
import { startHttpSink, type HttpSink } from '../fixtures/http-sink.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import { Fleet, type UnexpectedExit } from './fleet.js';
import { LoadGenerator, messageId, type LoadStats } from './load.js';
import { noChaosYet, runChaos, type ChaosCounts } from './monkey.js';
import { PipelineProbe } from './probe.js';
import type { AppKind, ChaosOptions } from './options.js';
import { verifyDestination, type DestinationVerdict } from './verify.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PREFIX = 'chaos';
const PROGRESS_EVERY_MS = 10_000;

/** What a chaos run found; {@link formatSummary} prints it. */
export interface ChaosReport {
  passed: boolean;
  /** Why it failed, one line each (empty when it passed). */
  failures: string[];
  options: ChaosOptions;
  timings: { startupMs: number; loadMs: number; drainMs: number; totalMs: number };
  load: LoadStats;
  /** Deliveries the 202 answers call for (a message to two destinations counts twice). */
  expectedDeliveries: number;
  chaos: ChaosCounts;
  workerNames: { reused: number; fresh: number };
  unexpectedExits: UnexpectedExit[];
  /** Exit codes of the final SIGTERM (0: a clean stop). */
  stopCodes: { label: string; code: number | string }[];
  /** Delivery attempts the sinks answered 503 on purpose. */
  sinkErrors: number;
  /** Entries in the dead-letter stream and destinations marked blocked, at the end. */
  deadLetters: number;
  blocked: Record<string, string>;
  verdicts: DestinationVerdict[];
  totals: Omit<DestinationVerdict, 'destination' | 'lost' | 'examples' | 'latencyMs'> & { lost: number };
  outDir: string;
}

/** Counts a sink's distinct Idempotency-Keys as they arrive (the sink's `unique()` is O(n) a call). */
class SinkTracker {
  readonly keys = new Set<string>();
  errors = 0;
  #seen = 0;
  constructor(readonly sink: HttpSink) {}
  unique(): number {
    const received = this.sink.received;
    for (; this.#seen < received.length; this.#seen++) this.keys.add(received[this.#seen]!.idempotencyKey);
    return this.keys.size;
  }
}

/**
 * Runs the whole chaos scenario and returns what it found. Never throws for a broken guarantee
 * (that is in the report); throws only when the run could not be set up (no redis-server, say).
 */
export async function runChaosScenario(
  options: ChaosOptions,
  log: (line: string) => void = console.log,
): Promise<ChaosReport> {
  const t0 = Date.now();
  const outDir = options.outDir ?? join(ROOT, '.tmp', 'chaos', new Date(t0).toISOString().replace(/[:.]/g, '-'));
  await mkdir(outDir, { recursive: true });
  const deadline = new AbortController();
  const deadlineTimer = setTimeout(() => deadline.abort(), options.deadlineMs);
  const failures: string[] = [];
  const destinations = Array.from({ length: options.destinations }, (_, k) => `dest-${String(k + 1)}`);

  let redis: TestRedis | undefined;
  let config: TempConfig | undefined;
  let fleet: Fleet | undefined;
  let probe: PipelineProbe | undefined;
  const trackers = new Map<string, SinkTracker>();
  try {
    redis = await startRedis({ appendonly: true });
    for (const d of destinations) {
      const tracker = new SinkTracker(await startHttpSink(`/in/${d}`));
      tracker.sink.respond = () => {
        if (Math.random() >= options.sinkErrorRate) return 200;
        tracker.errors++;
        return 503;
      };
      trackers.set(d, tracker);
    }
    config = await writeConfig({
      destinations: Object.fromEntries(
        destinations.map((d) => [
          d,
          { type: 'http', url: trackers.get(d)!.sink.url, timeoutMs: 5_000, retry: { baseMs: 50, maxMs: 1_000 } },
        ]),
      ),
      worker: { claimIdleMs: 1_500, claimIntervalMs: 300 },
      sender: { leaseTtlMs: 2_000 },
    });
    log(
      `chaos: ${options.messages.toLocaleString('en')} messages to ${String(destinations.length)} destinations over ` +
        `${String(options.durationMs / 1000)} s; Redis ${redis.url} (${redis.backend}, AOF appendfsync always); seed ${String(options.seed)}`,
    );
    fleet = await Fleet.start({
      env: { REDIS_URL: redis.url, RESEQ_PREFIX: PREFIX, RESEQ_CONFIG: config.path, LOG_LEVEL: 'info' },
      counts: options.processes,
      workerEnv: {
        WORKER_CONCURRENCY: '16',
        TRANSFORM_MODULE: fixturePath('transforms', 'random-delay.mjs'),
        RESEQ_TEST_MAX_DELAY_MS: String(options.transformMaxDelayMs),
      },
      signal: deadline.signal,
      log,
    });
    const startupMs = Date.now() - t0;
    log(`  started ${fleet.slots.map((s) => s.label).join(', ')} in ${(startupMs / 1000).toFixed(1)} s`);

    const load = new LoadGenerator({
      messages: options.messages,
      destinations,
      durationMs: options.durationMs,
      concurrency: options.concurrency,
      ingestUrls: fleet.ingestUrls(),
      signal: deadline.signal,
    });
    const delivered = (): number => [...trackers.values()].reduce((n, t) => n + t.unique(), 0);
    const expected = (): number => [...load.ledgers.values()].reduce((n, l) => n + l.bySequence.size, 0);
    const loadStart = Date.now();
    const activeFleet = fleet;
    const counts = noChaosYet();
    probe = new PipelineProbe(redis.url, PREFIX, destinations);
    const activeProbe = probe;
    const progress = setInterval(() => {
      const up = activeFleet.upCounts();
      const k = counts.kills;
      const head =
        `  ${((Date.now() - loadStart) / 1000).toFixed(0)}s: sent ${load.started.toLocaleString('en')}, ` +
        `accepted ${load.stats.accepted.toLocaleString('en')}, delivered ${delivered().toLocaleString('en')}/${expected().toLocaleString('en')}; ` +
        `up ${String(up.ingest)}/${String(up.worker)}/${String(up.sender)}, ` +
        `kills ${String(k.ingest)}/${String(k.worker)}/${String(k.sender)}, Redis restarts ${String(counts.redisRestarts)}`;
      void activeProbe.describe().then((waiting) => log(`${head}; ${waiting}`));
    }, PROGRESS_EVERY_MS);
    const chaosRun = runChaos({
      fleet,
      redis,
      kills: options.kills,
      redisRestarts: options.redisRestarts,
      durationMs: options.durationMs,
      seed: options.seed,
      signal: deadline.signal,
      log,
      counts,
    });
    await Promise.all([load.run(), chaosRun]);
    const loadMs = Date.now() - loadStart;
    log(`  load and chaos done after ${(loadMs / 1000).toFixed(1)} s; waiting for the last deliveries`);

    const drainStart = Date.now();
    const drainUntil = drainStart + options.drainTimeoutMs;
    while (!deadline.signal.aborted && Date.now() < drainUntil) {
      if ([...load.ledgers].every(([d, l]) => trackers.get(d)!.unique() >= l.bySequence.size)) break;
      await sleep(200);
    }
    const drainMs = Date.now() - drainStart;
    const drained = [...load.ledgers].every(([d, l]) => trackers.get(d)!.unique() >= l.bySequence.size);
    clearInterval(progress);
    if (!drained) {
      failures.push(
        `not every accepted message arrived within ${String(Math.round(options.drainTimeoutMs / 1000))} s after the load ` +
          `(${delivered().toLocaleString('en')}/${expected().toLocaleString('en')})`,
      );
    }
    // A late redelivery would still show up: give the senders a moment, then stop everything.
    await sleep(1_000);
    const stopCodes = await fleet.stopAll();
    const leftovers = await readLeftovers(redis.url);

    const verdicts = destinations.map((d) => {
      const ledger = load.ledgers.get(d)!;
      return verifyDestination({
        destination: d,
        accepted: ledger.bySequence,
        acceptedAt: ledger.acceptedAt,
        messageId,
        wire: trackers.get(d)!.sink.received,
      });
    });
    const totals = sumVerdicts(verdicts);
    if (deadline.signal.aborted) failures.push(`the run's deadline (${String(options.deadlineMs / 1000)} s) passed`);
    if (totals.lost > 0) failures.push(`${String(totals.lost)} accepted messages lost`);
    if (totals.reordered > 0) failures.push(`${String(totals.reordered)} deliveries out of order`);
    if (totals.staleRepeats > 0) failures.push(`${String(totals.staleRepeats)} stale repeats after a higher sequence`);
    if (totals.conflictingKeys > 0) failures.push(`${String(totals.conflictingKeys)} sequences under two keys`);
    if (totals.unexpected > 0) failures.push(`${String(totals.unexpected)} deliveries ingest never answered`);
    if (totals.wrongPayload > 0) failures.push(`${String(totals.wrongPayload)} deliveries with a wrong payload`);
    if (totals.assignedGaps > 0) failures.push(`${String(totals.assignedGaps)} gaps in the sequences ingest answered`);
    if (load.stats.rejected.length > 0)
      failures.push(`${String(load.stats.rejected.length)} messages rejected for good`);
    if (load.stats.inconsistent.length > 0)
      failures.push(`${String(load.stats.inconsistent.length)} inconsistent 202 answers`);
    if (load.stats.unsent > 0) failures.push(`${String(load.stats.unsent)} messages never accepted`);
    if (fleet.unexpectedExits.length > 0)
      failures.push(`${String(fleet.unexpectedExits.length)} app processes exited on their own`);
    if (leftovers.deadLetters > 0)
      failures.push(`${String(leftovers.deadLetters)} dead letters (the transform never fails here)`);
    const unclean = stopCodes.filter((s) => s.code !== 0);
    if (unclean.length > 0)
      failures.push(`SIGTERM did not stop cleanly: ${unclean.map((s) => `${s.label} (${String(s.code)})`).join(', ')}`);
    for (const kind of ['ingest', 'worker', 'sender'] as AppKind[]) {
      if (counts.kills[kind] < options.kills[kind])
        failures.push(`only ${String(counts.kills[kind])} of ${String(options.kills[kind])} ${kind} kills happened`);
    }
    if (counts.redisRestarts < options.redisRestarts)
      failures.push(`only ${String(counts.redisRestarts)} of ${String(options.redisRestarts)} Redis restarts happened`);

    const report: ChaosReport = {
      passed: failures.length === 0,
      failures,
      options,
      timings: { startupMs, loadMs, drainMs, totalMs: Date.now() - t0 },
      load: load.stats,
      expectedDeliveries: expected(),
      chaos: counts,
      workerNames: fleet.workerNames,
      unexpectedExits: fleet.unexpectedExits,
      stopCodes,
      sinkErrors: [...trackers.values()].reduce((n, t) => n + t.errors, 0),
      deadLetters: leftovers.deadLetters,
      blocked: leftovers.blocked,
      verdicts,
      totals,
      outDir,
    };
    await writeResults(outDir, report, load, trackers);
    return report;
  } finally {
    clearTimeout(deadlineTimer);
    probe?.close();
    if (fleet) {
      await fleet.writeLogs(join(outDir, 'logs')).catch(() => undefined);
      await fleet.killAll();
    }
    await Promise.all([...trackers.values()].map((t) => t.sink.close()));
    await redis?.stop();
    await config?.remove();
  }
}

/** Dead letters and block markers left in Redis (neither should exist: the transform never fails). */
async function readLeftovers(url: string): Promise<{ deadLetters: number; blocked: Record<string, string> }> {
  const keys = new KeySchema(PREFIX);
  const client = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: true });
  try {
    await client.connect();
    return { deadLetters: await client.xlen(keys.deadLetters), blocked: await client.hgetall(keys.blocked) };
  } finally {
    client.disconnect();
  }
}

function sumVerdicts(verdicts: readonly DestinationVerdict[]): ChaosReport['totals'] {
  const sum = (pick: (v: DestinationVerdict) => number): number => verdicts.reduce((n, v) => n + pick(v), 0);
  return {
    accepted: sum((v) => v.accepted),
    delivered: sum((v) => v.delivered),
    lost: sum((v) => v.lost.length),
    reordered: sum((v) => v.reordered),
    staleRepeats: sum((v) => v.staleRepeats),
    redelivered: sum((v) => v.redelivered),
    conflictingKeys: sum((v) => v.conflictingKeys),
    unexpected: sum((v) => v.unexpected),
    wrongPayload: sum((v) => v.wrongPayload),
    assignedGaps: sum((v) => v.assignedGaps),
  };
}

/** Writes what a person needs to look into a failure: the 202 answers and every delivery, per destination. */
async function writeResults(
  outDir: string,
  report: ChaosReport,
  load: LoadGenerator,
  trackers: ReadonlyMap<string, SinkTracker>,
): Promise<void> {
  await mkdir(join(outDir, 'destinations'), { recursive: true });
  for (const [d, ledger] of load.ledgers) {
    const accepted = [...ledger.bySequence]
      .sort((a, b) => a[0] - b[0])
      .map(([seq, index]) => JSON.stringify({ seq, id: messageId(index), at: ledger.acceptedAt.get(seq) }));
    await writeFile(join(outDir, 'destinations', `${d}.accepted.jsonl`), accepted.join('\n') + '\n');
    const wire = trackers
      .get(d)!
      .sink.received.map((r) =>
        JSON.stringify({ seq: r.sequence, key: r.idempotencyKey, id: r.messageId, at: r.receivedAt }),
      );
    await writeFile(join(outDir, 'destinations', `${d}.received.jsonl`), wire.join('\n') + '\n');
  }
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
}
