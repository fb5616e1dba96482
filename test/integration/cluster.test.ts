/**
 * The real apps on a Redis Cluster (REDIS_CLUSTER_NODES; 3 masters, 3 replicas, see
 * fixtures/redis-cluster.ts), with one shard (every key under one hash tag, so one slot):
 * every message ingest answered 202 for reaches both HTTP destinations once (after
 * Idempotency-Key de-duplication), in order, with contiguous sequences; and so it does when the
 * master of that slot is SIGKILLed mid-run with RESEQ_WAIT_REPLICAS=1, one of its replicas takes
 * over, and the killed node comes back as that replica's replica.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import { startRedisCluster, type ClusterNode, type TestCluster } from '../fixtures/redis-cluster.js';
import { expectAllDelivered, sendAll, startPipeline, type Sent } from './cluster-pipeline.js';
import { Harness, ingestUrl, pipelineConfig, post, range } from './helpers.js';

const MESSAGES = 300;
const PASSWORD = 'cluster-test-secret';
const CLI = join(resolve(import.meta.dirname, '../..'), 'apps', 'cli', 'dist', 'main.js');

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

describe('Redis Cluster', () => {
  let h: Harness | undefined;
  let cluster: TestCluster | undefined;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h?.dumpLogs(60));
    await h?.cleanup();
    h = undefined;
    await cluster?.stop();
    cluster = undefined;
  });

  it("delivers in order on the cluster, using REDIS_URL's password but not its host and port", async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1, password: PASSWORD });
    // Nothing listens on port 1: the apps can only reach Redis through the seed nodes.
    h = new Harness('cluster', `redis://:${PASSWORD}@127.0.0.1:1`);
    const sinks = { billing: await h.sink(), ledger: await h.sink() };
    const env = { REDIS_CLUSTER_NODES: cluster.seeds };
    const { url, config } = await startPipeline(h, env, sinks);

    const sent = await sendAll(url, MESSAGES);
    await expectAllDelivered(sent, sinks, MESSAGES);

    // The CLI reads the same state through the cluster.
    const cliEnv = { ...env, REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    const status = await runCli(['status', '--json'], cliEnv);
    expect(status.code, status.stderr).toBe(0);
    const destinations = (JSON.parse(status.stdout) as { destinations: Record<string, Record<string, unknown>> })
      .destinations;
    expect(destinations.billing).toMatchObject({ assigned: MESSAGES, delivered: MESSAGES, blocked: false });
    expect(destinations.ledger).toMatchObject({ assigned: MESSAGES / 3, delivered: MESSAGES / 3 });
    // inspect reads the consumer group with XINFO GROUPS, which ioredis routes by redirection.
    const inspected = await runCli(['inspect', '--json'], cliEnv);
    expect(inspected.code, inspected.stderr).toBe(0);
    const { input } = JSON.parse(inspected.stdout) as {
      input: { groups: { value: { name: string }[] }; pending: { value: { total: number } } };
    };
    expect(input.groups.value.map((g) => g.name)).toEqual(['workers']);
    expect(input.pending.value.total).toBe(0);

    // The pipeline's state is in the cluster (REDIS_URL's port has no Redis at all).
    const client = cluster.client();
    expect(await client.hget(h.key('seq'), 'billing')).toBe(String(MESSAGES));
    expect(await client.hget(h.key('pos'), 'ledger')).toBe(String(Math.ceil(MESSAGES / 3)));
  });

  it("acknowledges nothing while its slot's master has no replica, though the other masters have theirs (WAIT 1)", async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    h = new Harness('cluster-wait', cluster.url);
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const env = { REDIS_CLUSTER_NODES: cluster.seeds, RESEQ_WAIT_REPLICAS: '1', RESEQ_WAIT_TIMEOUT_MS: '200' };
    const url = `${ingestUrl(await h.start('ingest', config, env))}/v1/messages`;
    const master = await cluster.masterOf(h.key('in'));
    const [replica] = await cluster.replicasOf(master);
    await replica!.kill();

    // WAIT must reach the master that took the write: sent anywhere else, a replica would
    // confirm it (every other master still has one) and ingest would answer 202.
    const ids = range(1, 6).map((n) => `order-${n}`);
    for (const id of ids) {
      const answer = await post(url, { id, destination: 'billing', payload: { id } });
      expect(answer.status, answer.text).toBe(503);
      expect(answer.body.code).toBe('REDIS_REPLICAS_UNAVAILABLE');
    }

    // The replica back and in sync: the same ids are confirmed, with the sequences stored before.
    await replica!.restart();
    await cluster.waitUntilHealthy();
    for (const [n, id] of ids.entries()) {
      const answer = await post(url, { id, destination: 'billing', payload: { id } });
      expect(answer.status, answer.text).toBe(202);
      expect(answer.body).toEqual({ id, sequences: { billing: n + 1 } });
    }
  });

  it('loses nothing acknowledged and reorders nothing when the master of the slot is SIGKILLed (WAIT 1)', async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1500 });
    h = new Harness('cluster-failover', cluster.url);
    const sinks = { billing: await h.sink(), ledger: await h.sink() };
    const { url } = await startPipeline(
      h,
      { REDIS_CLUSTER_NODES: cluster.seeds, RESEQ_WAIT_REPLICAS: '1', RESEQ_WAIT_TIMEOUT_MS: '500' },
      sinks,
    );
    const slot = await cluster.slotOf(h.key('in'));
    const firstMaster = await cluster.masterOfSlot(slot);

    let failover: Promise<ClusterNode> | undefined;
    let failoverError: Error | undefined;
    const failOver = async (sent: Sent): Promise<ClusterNode> => {
      const { killed, promoted } = await cluster!.killMaster(h!.key('in'), 30_000);
      expect(killed).toBe(firstMaster);
      // The promoted replica has no replica yet: writes there are not confirmed, and ingest says so.
      await waitFor(() => (sent.retried.get('REDIS_REPLICAS_UNAVAILABLE') ?? 0) > 0, 'an unconfirmed write', 15_000);
      await sleep(1000);
      // The killed node returns with its nodes.conf and AOF, and rejoins as the new master's replica.
      await firstMaster.restart();
      await cluster!.waitUntilHealthy(60_000);
      return promoted;
    };

    const sent = await sendAll(url, MESSAGES, (i, progress) => {
      if (failoverError) throw failoverError;
      if (i !== Math.floor(MESSAGES / 3)) return;
      failover ??= failOver(progress);
      failover.catch((err: unknown) => (failoverError = err instanceof Error ? err : new Error(String(err))));
    });
    const promoted = await failover!;
    expect(promoted).not.toBe(firstMaster);
    expect(await cluster.masterOfSlot(slot)).toBe(promoted);
    expect(sent.retried.get('REDIS_REPLICAS_UNAVAILABLE')).toBeGreaterThan(0);
    await expectAllDelivered(sent, sinks, MESSAGES);

    const redeliveries = Object.values(sinks).reduce((n, s) => n + s.received.length - s.unique().length, 0);
    console.info(
      `cluster failover: ${MESSAGES} messages, slot ${slot} master ${firstMaster.port} -> ${promoted.port}, ` +
        `retried answers ${JSON.stringify(Object.fromEntries(sent.retried))}, ${redeliveries} redeliveries`,
    );
  });
});
