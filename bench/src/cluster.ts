/**
 * A private Redis Cluster per run for the reseq system (`--cluster-masters M`): M masters, no
 * replicas, no persistence, each a `redis-server` on free ports (client and bus) with its own
 * temporary directory, created by the test fixture (`redis-cli --cluster create`, which splits
 * the 16384 slots evenly) and torn down after the run. The harness counts every master: command
 * counters are reset and read on each and summed, and each master's CPU and memory are read
 * under its own label (`redis-1`, `redis-2`, …).
 */
import { Redis } from 'ioredis';
import { startRedisCluster } from '../../test/fixtures/redis-cluster.js';
import { parseCommandStats, sumCommandStats } from './commandstats.js';
import type { BenchRedis } from './redis.js';

/**
 * `cluster-node-timeout` of the bench's nodes. No replica can take over here, so a node marked
 * failed only stops the cluster (CLUSTERDOWN): Redis' own default keeps two saturated cores from
 * making a slow answer to the cluster bus look like a dead master.
 */
const NODE_TIMEOUT_MS = 15_000;

/** Starts a cluster of `masters` masters; resolves once every slot is served. */
export async function startBenchCluster(masters: number): Promise<BenchRedis> {
  const cluster = await startRedisCluster({ masters, replicas: 0, appendonly: false, nodeTimeoutMs: NODE_TIMEOUT_MS });
  const clients: Redis[] = [];
  try {
    const pids = new Map<string, number>();
    for (const [i, node] of cluster.nodes.entries()) {
      if (node.pid === undefined) throw new Error(`cluster node ${node.address} is not running`);
      pids.set(`redis-${i + 1}`, node.pid);
      // A plain connection per master: INFO and CONFIG RESETSTAT are per node, not per slot.
      const client = new Redis({ host: '127.0.0.1', port: node.port, maxRetriesPerRequest: 1, lazyConnect: true });
      client.on('error', () => {
        // Reported by the command that fails.
      });
      clients.push(client);
      await client.connect();
    }
    return {
      url: cluster.url,
      pids,
      clusterSeeds: cluster.seeds,
      async resetStats() {
        await Promise.all(clients.map((client) => client.config('RESETSTAT')));
      },
      async commandStats() {
        const infos = await Promise.all(clients.map((client) => client.info('commandstats')));
        return sumCommandStats(infos.map(parseCommandStats));
      },
      async stop() {
        for (const client of clients) client.disconnect();
        await cluster.stop();
      },
    };
  } catch (err) {
    for (const client of clients) client.disconnect();
    await cluster.stop();
    throw err;
  }
}
