/**
 * The chaos loop: SIGKILLs app processes of each kind at random moments of the run, starts
 * them again after a short random downtime (a worker under its old consumer name or a new one,
 * both happen in real life), and SIGKILLs and restarts Redis. The schedule comes from a seed,
 * so a run's pattern of kills can be repeated; the apps' own timing cannot.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestRedis } from '../fixtures/redis.js';
import type { Fleet } from './fleet.js';
import { APP_KINDS, type AppKind } from './options.js';

/** What the chaos loop did. */
export interface ChaosCounts {
  kills: Record<AppKind, number>;
  redisRestarts: number;
  /** Longest Redis downtime (kill to answering PING again), in ms. */
  longestRedisDownMs: number;
}

/** Options of {@link runChaos}. */
export interface MonkeyOptions {
  fleet: Fleet;
  redis: TestRedis;
  kills: Record<AppKind, number>;
  redisRestarts: number;
  durationMs: number;
  seed: number;
  signal: AbortSignal;
  log: (line: string) => void;
  /** Filled in as the chaos goes (so progress can show it). */
  counts: ChaosCounts;
}

/** Zero kills, zero restarts. */
export function noChaosYet(): ChaosCounts {
  return { kills: { ingest: 0, worker: 0, sender: 0 }, redisRestarts: 0, longestRedisDownMs: 0 };
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Longest downtime of a killed app process before it is started again, in ms. */
const MAX_APP_DOWN_MS = 1500;
/** Redis stays down between these, in ms. */
const REDIS_DOWN_MS = [300, 2500] as const;

/**
 * Runs the schedule: `kills[kind]` moments per kind, uniform over 5..90% of the duration (one
 * kind's kills one after another, the kinds and Redis concurrently), and the Redis restarts
 * evenly spread with jitter, counting into `options.counts`. Resolves when all of it is done (or
 * the signal aborted).
 */
export async function runChaos(options: MonkeyOptions): Promise<void> {
  const { fleet, redis, durationMs, signal, log } = options;
  const random = seededRandom(options.seed);
  const { counts } = options;
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const waitUntil = async (offsetMs: number): Promise<void> => {
    const wait = started + offsetMs - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
  };

  const schedules = new Map<AppKind, number[]>();
  for (const kind of APP_KINDS) {
    schedules.set(
      kind,
      Array.from({ length: options.kills[kind] }, () => durationMs * (0.05 + 0.85 * random())).sort((a, b) => a - b),
    );
  }
  // Each victim, downtime and naming choice is drawn now, so the seed fixes them whatever the timing.
  const choices = new Map<AppKind, { pick: number; downMs: number; reuseName: boolean }[]>();
  for (const kind of APP_KINDS) {
    choices.set(
      kind,
      schedules
        .get(kind)!
        .map(() => ({ pick: random(), downMs: random() * MAX_APP_DOWN_MS, reuseName: random() < 0.5 })),
    );
  }
  const redisTimes = Array.from(
    { length: options.redisRestarts },
    (_, k) =>
      (durationMs * 0.85 * (k + 0.25 + 0.5 * random())) / Math.max(1, options.redisRestarts) + durationMs * 0.05,
  );
  const redisDown = redisTimes.map(() => REDIS_DOWN_MS[0] + random() * (REDIS_DOWN_MS[1] - REDIS_DOWN_MS[0]));

  const killLoop = async (kind: AppKind): Promise<void> => {
    const times = schedules.get(kind)!;
    const picks = choices.get(kind)!;
    for (let k = 0; k < times.length && !signal.aborted; k++) {
      await waitUntil(times[k]!);
      // A kill is due: wait for a victim if every process of this kind is down (Redis down, say).
      let candidates = fleet.available(kind);
      while (candidates.length === 0 && !signal.aborted) {
        await sleep(100);
        candidates = fleet.available(kind);
      }
      if (signal.aborted) return;
      const { pick, downMs, reuseName } = picks[k]!;
      const slot = candidates[Math.floor(pick * candidates.length)]!;
      const pid = slot.app?.child.pid;
      counts.kills[kind]++;
      const naming = kind === 'worker' ? (reuseName ? ', same consumer name' : ', new consumer name') : '';
      log(
        `  ${elapsed()} SIGKILL ${slot.label} (pid ${String(pid)}), back in ${String(Math.round(downMs))} ms${naming}`,
      );
      await fleet.killAndRestart(slot, downMs, reuseName);
    }
  };

  const redisLoop = async (): Promise<void> => {
    for (let k = 0; k < redisTimes.length && !signal.aborted; k++) {
      await waitUntil(redisTimes[k]!);
      if (signal.aborted) return;
      const down = Date.now();
      const downMs = redisDown[k] ?? REDIS_DOWN_MS[0];
      log(`  ${elapsed()} SIGKILL redis-server, back in ${String(Math.round(downMs))} ms`);
      await redis.kill();
      counts.redisRestarts++;
      await sleep(downMs);
      await redis.restart();
      counts.longestRedisDownMs = Math.max(counts.longestRedisDownMs, Date.now() - down);
      log(`  ${elapsed()} redis-server answers again (down ${String(Date.now() - down)} ms)`);
    }
  };

  await Promise.all([...APP_KINDS.map((kind) => killLoop(kind)), redisLoop()]);
}
