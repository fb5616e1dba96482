/**
 * Where the reseq system's keys live in a run: `--shards N` (RESEQ_SHARDS: over how many
 * hash-tagged shards the destinations are spread) and `--cluster-masters M` (0: the one private
 * redis-server; M ≥ 3: a fresh Redis Cluster of M masters and no replicas). The baselines always
 * run on one redis-server: BullMQ and groupmq have no cluster mode in the harness.
 */
import { BenchUsageError } from './options-error.js';

/** The Redis layout of reseq's runs. */
export interface RedisTopology {
  /** RESEQ_SHARDS for every app (1 by default: one hash tag, as without the option). */
  shards: number;
  /** Masters of the run's Redis Cluster; 0 for one plain redis-server (the default). */
  clusterMasters: number;
}

export const DEFAULT_TOPOLOGY: RedisTopology = { shards: 1, clusterMasters: 0 };

/** RESEQ_SHARDS' range (docs/configuration.md). */
export const MAX_SHARDS = 1024;
/** `redis-cli --cluster create` needs 3 masters at least. */
export const MIN_CLUSTER_MASTERS = 3;
/** More masters than this on one small machine measure process switching, not Redis. */
export const MAX_CLUSTER_MASTERS = 16;

/** Usage lines of the two options. */
export const TOPOLOGY_USAGE = [
  `  --shards <n>        reseq only: RESEQ_SHARDS of every app, 1-${MAX_SHARDS} (default 1)`,
  '  --cluster-masters <m>',
  `                      reseq only: a fresh Redis Cluster of m masters per run (${MIN_CLUSTER_MASTERS}-${MAX_CLUSTER_MASTERS}; no`,
  '                      replicas, no persistence), given to every app as REDIS_CLUSTER_NODES;',
  '                      0 (default): one redis-server. The baselines ignore both options and',
  '                      always run on one redis-server.',
];

function integerOf(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new BenchUsageError(`${flag} must be a whole number, not "${text}"`);
  return Number(text);
}

/** Parses `--shards`' value: a whole number 1..1024. */
export function parseShards(text: string): number {
  const shards = integerOf('--shards', text);
  if (shards < 1 || shards > MAX_SHARDS) {
    throw new BenchUsageError(`--shards must be between 1 and ${MAX_SHARDS} (RESEQ_SHARDS' range), not ${shards}`);
  }
  return shards;
}

/** Parses `--cluster-masters`' value: 0, or a whole number 3..16. */
export function parseClusterMasters(text: string): number {
  const masters = integerOf('--cluster-masters', text);
  if (masters !== 0 && (masters < MIN_CLUSTER_MASTERS || masters > MAX_CLUSTER_MASTERS)) {
    throw new BenchUsageError(
      `--cluster-masters must be 0 (one redis-server) or between ${MIN_CLUSTER_MASTERS} and ${MAX_CLUSTER_MASTERS}, ` +
        `not ${masters} (a Redis Cluster needs ${MIN_CLUSTER_MASTERS} masters at least)`,
    );
  }
  return masters;
}

/** `1 shard / 1 redis-server`, `6 shards / 3 cluster masters`. */
export function describeTopology(topology: RedisTopology): string {
  const shards = `${topology.shards} shard${topology.shards === 1 ? '' : 's'}`;
  return topology.clusterMasters === 0
    ? `${shards} / 1 redis-server`
    : `${shards} / ${topology.clusterMasters} cluster masters`;
}

/** Whether `topology` is the default one (one shard on one redis-server). */
export function isDefaultTopology(topology: RedisTopology): boolean {
  return topology.shards === DEFAULT_TOPOLOGY.shards && topology.clusterMasters === DEFAULT_TOPOLOGY.clusterMasters;
}

/**
 * A note on a layout that is valid but uneven: shards are placed in equal parts of the slot
 * range, so each master gets the same number only when the shards are a multiple of the masters.
 */
export function topologyNote(topology: RedisTopology): string | undefined {
  const { shards, clusterMasters } = topology;
  if (clusterMasters === 0 || shards % clusterMasters === 0) return undefined;
  if (shards < clusterMasters) {
    return `${shards} shard${shards === 1 ? '' : 's'} on ${clusterMasters} masters: ${clusterMasters - shards} of the masters have no shard`;
  }
  return `${shards} shards are not a multiple of ${clusterMasters} masters: the masters do not get equal numbers of shards`;
}

/** The environment of reseq's apps for a topology, besides REDIS_URL. */
export function topologyEnv(topology: RedisTopology, clusterSeeds: string | undefined): Record<string, string> {
  const env: Record<string, string> = { RESEQ_SHARDS: String(topology.shards) };
  if (clusterSeeds !== undefined) env.REDIS_CLUSTER_NODES = clusterSeeds;
  return env;
}

/**
 * Gives every reseq run (reseq, reseq+hedge, reseq+batch, reseq+ahead) the topology; the baselines' runs stay
 * as they are, on one redis-server.
 */
export function applyTopology<T extends { system: { kind: string; topology?: RedisTopology } }>(
  runs: readonly T[],
  topology: RedisTopology,
): T[] {
  return runs.map((run) => (run.system.kind === 'reseq' ? { ...run, system: { ...run.system, topology } } : run));
}

/** The system's name in the tables: `reseq`, or `reseq [6 shards / 3 cluster masters]` off the default. */
export function systemLabel(system: string, topology: RedisTopology | undefined): string {
  return topology === undefined || isDefaultTopology(topology) ? system : `${system} [${describeTopology(topology)}]`;
}
