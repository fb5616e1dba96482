/**
 * A private `redis-server` per run, on a free port, without persistence (`--save ''`,
 * `--appendonly no`), so `INFO commandstats` counts only that run and nothing is left behind.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { spawnUntilPing, terminate } from '../../test/fixtures/redis.js';
import { parseCommandStats, type CommandStat } from './commandstats.js';
import { freePort } from './processes.js';

/** A running private Redis. */
export interface BenchRedis {
  url: string;
  /** Every redis-server of it by label: `redis`, or `redis-1`, `redis-2`, … for a cluster's masters. */
  pids: ReadonlyMap<string, number>;
  /** REDIS_CLUSTER_NODES for the apps (every master); undefined for one redis-server. */
  clusterSeeds?: string;
  /** Zeroes the command counters (CONFIG RESETSTAT, on every server). */
  resetStats(): Promise<void>;
  /** The current `INFO commandstats` (summed over every server). */
  commandStats(): Promise<Map<string, CommandStat>>;
  stop(): Promise<void>;
}

/** Starts a fresh redis-server from PATH; resolves once it answers PING. */
export async function startBenchRedis(): Promise<BenchRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'reseq-bench-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    try {
      child = await spawnUntilPing(['redis-server', ...args, '--dir', dir, '--daemonize', 'no', '--logfile', ''], port);
    } catch (err) {
      // Another process may have taken the port between the probe and the bind.
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const running = child;
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', () => {
    // Reported by the command that fails.
  });
  await client.connect();
  return {
    url,
    pids: new Map([['redis', running.pid!]]),
    async resetStats() {
      await client.config('RESETSTAT');
    },
    async commandStats() {
      return parseCommandStats(await client.info('commandstats'));
    },
    async stop() {
      client.disconnect();
      await terminate(running, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
