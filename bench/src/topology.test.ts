import { describe, expect, it } from 'vitest';
import type { BenchUsageError } from './options-error.js';
import { parseOptions, usage, type BenchOptions } from './options.js';
import { allRuns } from './scenarios.js';
import { applyTopology, describeTopology, systemLabel, topologyEnv, topologyNote } from './topology.js';

const parsed = (argv: string[]): BenchOptions => parseOptions(argv) as BenchOptions;

function refused(argv: string[]): BenchUsageError {
  try {
    parseOptions(argv);
  } catch (err) {
    return err as BenchUsageError;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
}

describe('--shards and --cluster-masters', () => {
  it('default to one shard on one redis-server', () => {
    expect(parsed(['--scenario', 'ceiling']).topology).toEqual({ shards: 1, clusterMasters: 0 });
  });

  it('take a shard count and a number of cluster masters, in either form', () => {
    expect(parsed(['--shards', '6', '--cluster-masters', '3']).topology).toEqual({ shards: 6, clusterMasters: 3 });
    expect(parsed(['--shards=1024', '--cluster-masters=16']).topology).toEqual({ shards: 1024, clusterMasters: 16 });
    // Sharded on the one redis-server; and one shard on a cluster (one master holds it all).
    expect(parsed(['--shards', '4']).topology).toEqual({ shards: 4, clusterMasters: 0 });
    expect(parsed(['--cluster-masters', '3']).topology).toEqual({ shards: 1, clusterMasters: 3 });
    expect(parsed(['--cluster-masters', '0']).topology).toEqual({ shards: 1, clusterMasters: 0 });
  });

  it('refuse counts out of range, fractions and words with a coded error', () => {
    expect(refused(['--shards', '0'])).toMatchObject({
      code: 'BENCH_USAGE',
      message: "--shards must be between 1 and 1024 (RESEQ_SHARDS' range), not 0",
    });
    expect(refused(['--shards', '1025']).message).toMatch(/between 1 and 1024/);
    for (const value of ['2.5', '-3', 'three', '', '1e2', '0x10']) {
      expect(refused([`--shards=${value}`]), value).toMatchObject({
        code: 'BENCH_USAGE',
        message: `--shards must be a whole number, not "${value}"`,
      });
    }
    expect(refused(['--shards'])).toMatchObject({ code: 'BENCH_USAGE', message: '--shards needs a value' });
    expect(refused(['--shards', '--quick']).message).toBe('--shards needs a value');
  });

  it('refuse clusters of fewer than 3 or more than 16 masters', () => {
    for (const masters of ['1', '2', '17']) {
      expect(refused(['--cluster-masters', masters]), masters).toMatchObject({
        code: 'BENCH_USAGE',
        message: `--cluster-masters must be 0 (one redis-server) or between 3 and 16, not ${masters} (a Redis Cluster needs 3 masters at least)`,
      });
    }
    expect(refused(['--cluster-masters', 'x']).message).toBe('--cluster-masters must be a whole number, not "x"');
    expect(refused(['--cluster-masters'])).toMatchObject({ message: '--cluster-masters needs a value' });
  });

  it('are in the usage text, which says the baselines ignore them', () => {
    const text = usage();
    expect(text).toContain('--shards <n>');
    expect(text).toContain('--cluster-masters <m>');
    expect(text).toMatch(/baselines ignore both options/);
  });
});

describe('the topology of the runs', () => {
  it('goes to every reseq run and to no baseline', () => {
    const topology = { shards: 6, clusterMasters: 3 };
    const runs = applyTopology(allRuns(['ceiling'], true), topology);
    const reseqIds = new Set(runs.filter((r) => r.system.topology !== undefined).map((r) => r.system.id));
    expect(reseqIds).toEqual(new Set(['reseq', 'reseq+batch']));
    for (const run of runs) {
      if (run.system.kind === 'reseq') expect(run.system.topology).toEqual(topology);
      else expect(run.system.topology, run.system.id).toBeUndefined();
    }
    // The load, sinks and durations stay those of the scenario.
    expect(runs.map((r) => [r.variant, r.load, r.durationMs])).toEqual(
      allRuns(['ceiling'], true).map((r) => [r.variant, r.load, r.durationMs]),
    );
  });

  it('gives every app RESEQ_SHARDS, and the cluster seeds where there is a cluster', () => {
    expect(topologyEnv({ shards: 1, clusterMasters: 0 }, undefined)).toEqual({ RESEQ_SHARDS: '1' });
    expect(topologyEnv({ shards: 4, clusterMasters: 0 }, undefined)).toEqual({ RESEQ_SHARDS: '4' });
    expect(topologyEnv({ shards: 6, clusterMasters: 3 }, '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003')).toEqual({
      RESEQ_SHARDS: '6',
      REDIS_CLUSTER_NODES: '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
    });
  });

  it('names the topology in the tables, except the default one', () => {
    expect(describeTopology({ shards: 1, clusterMasters: 0 })).toBe('1 shard / 1 redis-server');
    expect(describeTopology({ shards: 6, clusterMasters: 3 })).toBe('6 shards / 3 cluster masters');
    expect(systemLabel('reseq', undefined)).toBe('reseq');
    expect(systemLabel('reseq', { shards: 1, clusterMasters: 0 })).toBe('reseq');
    expect(systemLabel('reseq', { shards: 3, clusterMasters: 3 })).toBe('reseq [3 shards / 3 cluster masters]');
    expect(systemLabel('reseq', { shards: 4, clusterMasters: 0 })).toBe('reseq [4 shards / 1 redis-server]');
  });

  it('notes a layout whose shards do not spread evenly over the masters', () => {
    expect(topologyNote({ shards: 6, clusterMasters: 3 })).toBeUndefined();
    expect(topologyNote({ shards: 4, clusterMasters: 0 })).toBeUndefined();
    expect(topologyNote({ shards: 1, clusterMasters: 3 })).toBe('1 shard on 3 masters: 2 of the masters have no shard');
    expect(topologyNote({ shards: 4, clusterMasters: 3 })).toMatch(/not a multiple of 3 masters/);
  });
});
