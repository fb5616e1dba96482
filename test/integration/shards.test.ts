/**
 * The real apps with their destinations spread over several shards (RESEQ_SHARDS): on one Redis
 * with four shards, and on a Redis Cluster (three masters, three replicas) with three shards, one
 * on each master. Messages go to several destinations at once, on different shards; every message
 * ingest answered 202 for reaches each of its destinations once (after Idempotency-Key
 * de-duplication), in order, with contiguous sequences, also when a master is SIGKILLed mid-run
 * under RESEQ_WAIT_REPLICAS=1. The CLI reads the same state over every shard, and an app started
 * with another shard count than the pipeline's is refused.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Shards } from '@reseq/store';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { deleteKeys } from '../fixtures/redis.js';
import { startRedisCluster, type ClusterNode, type TestCluster } from '../fixtures/redis-cluster.js';
import { expectAllDelivered, sendAll, type Routing, type Sent } from './cluster-pipeline.js';
import { Harness, ingestUrl, pipelineConfig, TEST_TRANSFORM } from './helpers.js';

const CLI = join(resolve(import.meta.dirname, '../..'), 'apps', 'cli', 'dist', 'main.js');

/** Every message goes to one destination; every second also to the next; every third also to the one after. */
function spread(destinations: readonly string[]): Routing {
  const n = destinations.length;
  return {
    destinations,
    targetsOf: (i) => {
      const targets = new Set([destinations[i % n]!]);
      if (i % 2 === 0) targets.add(destinations[(i + 1) % n]!);
      if (i % 3 === 0) targets.add(destinations[(i + 3) % n]!);
      return [...targets];
    },
  };
}

/** Runs the operator CLI (`node apps/cli/dist/main.js`) with only the given environment. */
async function runCli(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

describe('sharded pipelines (RESEQ_SHARDS)', () => {
  let h: Harness | undefined;
  let cluster: TestCluster | undefined;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h?.dumpLogs(60));
    // Every shard's keys, `{<prefix>|<n>.<k>}`, besides the pipeline's own `{<prefix>}`.
    if (h && !cluster) await deleteKeys(h.redis, `{${h.prefix}`).catch(() => undefined);
    await h?.cleanup();
    h = undefined;
    await cluster?.stop();
    cluster = undefined;
  });

  /** Starts ingest, two workers and two senders; returns ingest's message URL and the config file. */
  async function startPipeline(
    env: Record<string, string>,
    sinks: Record<string, HttpSink>,
  ): Promise<{ url: string; config: string }> {
    const config = await h!.config(
      pipelineConfig(Object.fromEntries(Object.entries(sinks).map(([d, sink]) => [d, { url: sink.url }])), {
        sender: { leaseTtlMs: 3000 },
        worker: { claimIdleMs: 2000 },
      }),
    );
    const ingest = await h!.start('ingest', config, env);
    for (const n of [1, 2]) {
      await h!.start('transform-worker', config, {
        ...env,
        RESEQ_CONSUMER_NAME: `shard-worker-${n}`,
        TRANSFORM_MODULE: TEST_TRANSFORM,
        RESEQ_TEST_MAX_DELAY_MS: '20',
        WORKER_CONCURRENCY: '8',
      });
    }
    for (let n = 0; n < 2; n++) await h!.start('resequencer-sender', config, env);
    return { url: `${ingestUrl(ingest)}/v1/messages`, config };
  }

  it('delivers in order over four shards of one Redis; the CLI merges them; another count is refused', async () => {
    const destinations = ['billing', 'ledger', 'audit', 'crm', 'search', 'archive', 'mail'];
    const count = 280;
    h = new Harness('shards-single', inject('redisUrl'));
    const shards = new Shards(h.prefix, 4);
    expect(new Set(destinations.map((d) => shards.shardOf(d))).size).toBe(4);
    const sinks = Object.fromEntries(await Promise.all(destinations.map(async (d) => [d, await h!.sink()] as const)));
    const env = { RESEQ_SHARDS: '4' };
    const { url, config } = await startPipeline(env, sinks);

    const sent = await sendAll(url, count, undefined, spread(destinations));
    await expectAllDelivered(sent, sinks, count, spread(destinations));

    // Each destination's state is on its own shard, none on the pipeline's own tag but the record.
    for (const d of destinations) {
      const keys = shards.forDestination(d);
      expect(await h.redis.hget(keys.sequences, d), d).toBe(String(sent.acknowledged.get(d)!.size));
    }
    expect(await h.redis.exists(h.key('seq'), h.key('in'), h.key('pos'))).toBe(0);
    expect(await h.redis.hget(h.key('meta'), 'shards')).toBe('4');

    const cliEnv = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config, ...env };
    const status = await runCli(['status', '--json'], cliEnv);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as {
      destinations: Record<string, { assigned: number; delivered: number }>;
    };
    for (const d of destinations) {
      const n = sent.acknowledged.get(d)!.size;
      expect(report.destinations[d], d).toMatchObject({ assigned: n, delivered: n, deadLettered: 0, blocked: false });
    }
    const inspected = await runCli(['inspect', '--json'], cliEnv);
    expect(inspected.code, inspected.stderr).toBe(0);
    const { shards: perShard } = JSON.parse(inspected.stdout) as {
      shards: {
        tag: string;
        destinations: Record<string, unknown>;
        input: { pending: { value: { total: number } } };
      }[];
    };
    expect(perShard.map((s) => s.tag)).toEqual(shards.all.map((k) => k.tag));
    perShard.forEach((s, n) => {
      expect(Object.keys(s.destinations).sort()).toEqual(destinations.filter((d) => shards.shardOf(d) === n).sort());
      expect(s.input.pending.value.total).toBe(0);
    });

    // The pipeline is laid out over four shards: the CLI and an app with another count refuse it.
    const wrong = await runCli(['status'], { ...cliEnv, RESEQ_SHARDS: '2' });
    expect(wrong.code).toBe(7);
    expect(wrong.stderr).toMatch(
      /^reseq: invalid configuration: env RESEQ_SHARDS: 2, but the pipeline .* over 4 shard/,
    );
    await expect(h.start('ingest', config, { RESEQ_SHARDS: '1' })).rejects.toThrow(/RESEQ_SHARDS: 1, but the pipeline/);
  });

  it('spreads three shards over the three masters of a cluster and delivers in order across them', async () => {
    const destinations = ['billing', 'ledger', 'audit', 'crm', 'search', 'archive'];
    const count = 240;
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    h = new Harness('shards-cluster', cluster.url);
    const shards = new Shards(h.prefix, 3);
    // One shard on each master: each shard's keys on a master of its own.
    const masters = await Promise.all(shards.all.map((keys) => cluster!.masterOf(keys.input)));
    expect(new Set(masters).size).toBe(3);
    const sinks = Object.fromEntries(await Promise.all(destinations.map(async (d) => [d, await h!.sink()] as const)));
    const env = { REDIS_CLUSTER_NODES: cluster.seeds, RESEQ_SHARDS: '3' };
    const { url, config } = await startPipeline(env, sinks);

    const sent = await sendAll(url, count, undefined, spread(destinations));
    await expectAllDelivered(sent, sinks, count, spread(destinations));

    // Each master took the writes of its shard's destinations.
    const client = cluster.client();
    for (const d of destinations) {
      const keys = shards.forDestination(d);
      expect(await client.hget(keys.delivered, d), d).toBe(String(sent.acknowledged.get(d)!.size));
      expect(await cluster.masterOf(keys.results(d))).toBe(masters[shards.shardOf(d)]);
    }
    const status = await runCli(['status', '--json'], {
      ...env,
      REDIS_URL: h.redisUrl,
      RESEQ_PREFIX: h.prefix,
      RESEQ_CONFIG: config,
    });
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as {
      destinations: Record<string, { assigned: number; delivered: number }>;
    };
    for (const d of destinations) {
      const n = sent.acknowledged.get(d)!.size;
      expect(report.destinations[d], d).toMatchObject({ assigned: n, delivered: n });
    }
  });

  it('loses nothing acknowledged and reorders nothing when the master of a shard is SIGKILLed (WAIT 1)', async () => {
    const destinations = ['billing', 'ledger', 'audit', 'crm', 'search', 'archive'];
    const count = 300;
    cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1500 });
    h = new Harness('shards-failover', cluster.url);
    const shards = new Shards(h.prefix, 3);
    const sinks = Object.fromEntries(await Promise.all(destinations.map(async (d) => [d, await h!.sink()] as const)));
    const { url } = await startPipeline(
      { REDIS_CLUSTER_NODES: cluster.seeds, RESEQ_SHARDS: '3', RESEQ_WAIT_REPLICAS: '1', RESEQ_WAIT_TIMEOUT_MS: '500' },
      sinks,
    );
    // Shard 2 (billing and audit); the other shards' masters go on meanwhile.
    const victim = shards.keys(2).input;
    const slot = await cluster.slotOf(victim);
    const firstMaster = await cluster.masterOfSlot(slot);

    let failover: Promise<ClusterNode> | undefined;
    let failoverError: Error | undefined;
    const failOver = async (sent: Sent): Promise<ClusterNode> => {
      const { killed, promoted } = await cluster!.killMaster(victim, 30_000);
      expect(killed).toBe(firstMaster);
      // The promoted replica has no replica yet: writes there are not confirmed, and ingest says so.
      await waitFor(() => (sent.retried.get('REDIS_REPLICAS_UNAVAILABLE') ?? 0) > 0, 'an unconfirmed write', 15_000);
      await sleep(1000);
      await firstMaster.restart();
      await cluster!.waitUntilHealthy(60_000);
      return promoted;
    };

    const sent = await sendAll(
      url,
      count,
      (i, progress) => {
        if (failoverError) throw failoverError;
        if (i !== Math.floor(count / 3)) return;
        failover ??= failOver(progress);
        failover.catch((err: unknown) => (failoverError = err instanceof Error ? err : new Error(String(err))));
      },
      spread(destinations),
    );
    const promoted = await failover!;
    expect(await cluster.masterOfSlot(slot)).toBe(promoted);
    expect(sent.retried.get('REDIS_REPLICAS_UNAVAILABLE')).toBeGreaterThan(0);
    await expectAllDelivered(sent, sinks, count, spread(destinations));

    const redeliveries = Object.values(sinks).reduce((n, s) => n + s.received.length - s.unique().length, 0);
    console.info(
      `sharded cluster failover: ${count} messages to ${destinations.length} destinations on 3 shards, ` +
        `shard 2 (slot ${slot}) master ${firstMaster.port} -> ${promoted.port}, ` +
        `retried answers ${JSON.stringify(Object.fromEntries(sent.retried))}, ${redeliveries} redeliveries`,
    );
  });
});
