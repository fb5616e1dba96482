import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load-config.js';
import { urlDatabase } from './schema.js';

/** The problems a ConfigError lists, or [] where parsing succeeded. */
function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env, {});
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('REDIS_CLUSTER_NODES and RESEQ_SHARDS', () => {
  it('are unset and 1 by default: one Redis at REDIS_URL, one shard', () => {
    const { env } = parseConfig({}, {});
    expect(env.REDIS_CLUSTER_NODES).toBeUndefined();
    expect(env.RESEQ_SHARDS).toBe(1);
  });

  it('reads the seed nodes (IPv6 in brackets, spaces trimmed) and the shard count', () => {
    const { env } = parseConfig(
      { REDIS_CLUSTER_NODES: 'redis-a:7000, 10.0.0.2:7001,[::1]:7002', RESEQ_SHARDS: '16' },
      {},
    );
    expect(env.REDIS_CLUSTER_NODES).toEqual([
      { host: 'redis-a', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    expect(env.RESEQ_SHARDS).toBe(16);
  });

  it('keeps REDIS_URL for the user, password and TLS', () => {
    const { env } = parseConfig({ REDIS_URL: 'rediss://app:secret@ignored:1', REDIS_CLUSTER_NODES: 'n1:7000' }, {});
    expect(env.REDIS_URL).toBe('rediss://app:secret@ignored:1');
  });

  it('treats an empty REDIS_CLUSTER_NODES as unset', () => {
    expect(parseConfig({ REDIS_CLUSTER_NODES: '' }, {}).env.REDIS_CLUSTER_NODES).toBeUndefined();
  });

  it('names every malformed seed node', () => {
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'n1:7000,n2,n3:70000,:7001' })).toEqual([
      'env REDIS_CLUSTER_NODES: "n2" is not host:port (port 1-65535)',
      'env REDIS_CLUSTER_NODES: "n3:70000" is not host:port (port 1-65535)',
      'env REDIS_CLUSTER_NODES: ":7001" is not host:port (port 1-65535)',
    ]);
  });

  it('refuses RESEQ_SHARDS outside 1..1024 and non-integers', () => {
    for (const value of ['0', '1025', '2.5', 'many', '-1']) {
      expect(problemsOf({ RESEQ_SHARDS: value }), value).toEqual([expect.stringMatching(/^env RESEQ_SHARDS: /)]);
    }
    expect(parseConfig({ RESEQ_SHARDS: '1024' }, {}).env.RESEQ_SHARDS).toBe(1024);
  });

  it('refuses REDIS_CLUSTER_NODES together with REDIS_SENTINELS, with a coded error', () => {
    let error: unknown;
    try {
      parseConfig({ REDIS_CLUSTER_NODES: 'n1:7000', REDIS_SENTINELS: 's1:26379' }, {});
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    expect((error as ConfigError).problems).toEqual([
      'env REDIS_CLUSTER_NODES: cannot be combined with REDIS_SENTINELS: a Redis Cluster fails over by itself; set one of the two',
    ]);
  });

  it('lists the combination beside every other problem', () => {
    expect(
      problemsOf({ REDIS_CLUSTER_NODES: 'n1:7000', REDIS_SENTINELS: 's1:26379', WORKER_CONCURRENCY: 'many' }),
    ).toEqual([
      expect.stringMatching(/^env WORKER_CONCURRENCY: /),
      expect.stringMatching(/^env REDIS_CLUSTER_NODES: cannot be combined with REDIS_SENTINELS/),
    ]);
  });

  it('refuses a database other than 0 in REDIS_URL with a cluster, and accepts 0 or none', () => {
    const message =
      'env REDIS_URL: must name database 0 (or none) with REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only';
    expect(problemsOf({ REDIS_URL: 'redis://h:1/2', REDIS_CLUSTER_NODES: 'n1:7000' })).toEqual([message]);
    expect(problemsOf({ REDIS_URL: 'redis://h:1?db=3', REDIS_CLUSTER_NODES: 'n1:7000' })).toEqual([message]);
    expect(problemsOf({ REDIS_URL: 'redis://h:1/0', REDIS_CLUSTER_NODES: 'n1:7000' })).toEqual([]);
    expect(problemsOf({ REDIS_URL: 'redis://h:1/', REDIS_CLUSTER_NODES: 'n1:7000' })).toEqual([]);
    // Without a cluster, any database goes, as before.
    expect(problemsOf({ REDIS_URL: 'redis://h:1/2' })).toEqual([]);
  });
});

describe('urlDatabase', () => {
  it('reads the path or the db parameter, 0 when absent, NaN when not a number', () => {
    expect(urlDatabase('redis://h:1')).toBe(0);
    expect(urlDatabase('redis://h:1/')).toBe(0);
    expect(urlDatabase('redis://h:1/7')).toBe(7);
    expect(urlDatabase('rediss://u:p@h:1?db=4')).toBe(4);
    expect(urlDatabase('redis://h:1/x')).toBeNaN();
    expect(urlDatabase('redis://[bad')).toBeNaN();
    expect(urlDatabase(undefined)).toBeNaN();
  });
});
