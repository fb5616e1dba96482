/**
 * The real apps on a Redis Cluster (REDIS_CLUSTER_NODES; 3 masters, 3 replicas, see
 * fixtures/redis-cluster.ts), with one shard (every key under one hash tag, so one slot):
 * every message ingest answered 202 for reaches both HTTP destinations once (after
 * Idempotency-Key de-duplication), in order, with contiguous sequences; and so it does when the
 * master of that slot is SIGKILLed mid-run with RESEQ_WAIT_REPLICAS=1, one of its replicas takes
 * over, and the killed node comes back as that replica's replica.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { startRedisCluster, type ClusterNode, type TestCluster } from '../fixtures/redis-cluster.js';
import { expectDelivered, Harness, ingestUrl, pipelineConfig, post, range, TEST_TRANSFORM } from './helpers.js';

const MESSAGES = 300;
const CLIENTS = 4;
const PASSWORD = 'cluster-test-secret';
const CLI = join(resolve(import.meta.dirname, '../..'), 'apps', 'cli', 'dist', 'main.js');

/** Every message goes to billing; every third also to ledger. */
const targetsOf = (i: number): string[] => (i % 3 === 0 ? ['billing', 'ledger'] : ['billing']);

/** What ingest acknowledged, per destination: sequence -> message id; and the retryable answers met. */
interface Sent {
  acknowledged: Map<string, Map<number, string>>;
  retried: Map<string, number>;
}

/**
 * Sends MESSAGES messages from CLIENTS concurrent clients, each retried with its id after a lost
 * connection, a 503 or a 429 (as the contract says), and calls `at(i)` before message i.
 */
async function sendAll(url: string, at: (i: number, sent: Sent) => void = () => undefined): Promise<Sent> {
  const sent: Sent = {
    acknowledged: new Map(['billing', 'ledger'].map((d) => [d, new Map<number, string>()])),
    retried: new Map(),
  };
  let next = 0;
  const client = async (): Promise<void> => {
    for (let i = next++; i < MESSAGES; i = next++) {
      at(i, sent);
      const id = `m-${i}-${randomUUID().slice(0, 8)}`;
      for (;;) {
        const answer = await post(url, { id, destinations: targetsOf(i), payload: { i } }).catch(() => undefined);
        if (answer?.status === 202) {
          const sequences = answer.body.sequences as Record<string, number>;
          expect(Object.keys(sequences).sort()).toEqual(targetsOf(i).sort());
          for (const [destination, sequence] of Object.entries(sequences)) {
            const seen = sent.acknowledged.get(destination)!;
            expect(seen.has(sequence), `${destination} sequence ${sequence} acknowledged twice`).toBe(false);
            seen.set(sequence, id);
          }
          break;
        }
        if (answer && answer.status !== 503 && answer.status !== 429) {
          throw new Error(`ingest answered ${answer.status}: ${answer.text}`);
        }
        const code = answer ? String(answer.body.code) : 'CONNECTION_LOST';
        sent.retried.set(code, (sent.retried.get(code) ?? 0) + 1);
        await sleep(100);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, () => client()));
  return sent;
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

/** Contiguous sequences per destination, all delivered once, in order, each with its own message. */
async function expectAllDelivered(sent: Sent, sinks: Record<string, HttpSink>): Promise<void> {
  const billing = sent.acknowledged.get('billing')!;
  const ledger = sent.acknowledged.get('ledger')!;
  expect(billing.size).toBe(MESSAGES);
  expect(ledger.size).toBe(Math.ceil(MESSAGES / 3));
  for (const [destination, acknowledged] of sent.acknowledged) {
    expect([...acknowledged.keys()].sort((a, b) => a - b)).toEqual(range(1, acknowledged.size));
    const sink = sinks[destination]!;
    await waitFor(() => sink.unique().length >= acknowledged.size, `every message delivered to ${destination}`, 60_000);
  }
  await sleep(300); // a late duplicate or stray delivery would show now
  for (const [destination, acknowledged] of sent.acknowledged) {
    const sink = sinks[destination]!;
    expectDelivered(sink, range(1, acknowledged.size));
    for (const delivery of sink.unique()) {
      expect(delivery.messageId, `${destination} sequence ${delivery.sequence}`).toBe(
        acknowledged.get(delivery.sequence),
      );
    }
  }
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

  /** Starts ingest, two workers and a sender on the cluster; returns ingest's message URL and the config file. */
  async function startPipeline(
    env: Record<string, string>,
    sinks: Record<string, HttpSink>,
  ): Promise<{ url: string; config: string }> {
    const config = await h!.config(
      pipelineConfig(
        { billing: { url: sinks.billing!.url }, ledger: { url: sinks.ledger!.url } },
        { sender: { leaseTtlMs: 3000 }, worker: { claimIdleMs: 2000 } },
      ),
    );
    const ingest = await h!.start('ingest', config, env);
    for (const n of [1, 2]) {
      await h!.start('transform-worker', config, {
        ...env,
        RESEQ_CONSUMER_NAME: `cluster-worker-${n}`,
        TRANSFORM_MODULE: TEST_TRANSFORM,
        RESEQ_TEST_MAX_DELAY_MS: '20',
      });
    }
    await h!.start('resequencer-sender', config, env);
    return { url: `${ingestUrl(ingest)}/v1/messages`, config };
  }

  it("delivers in order on the cluster, using REDIS_URL's password but not its host and port", async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1, password: PASSWORD });
    // Nothing listens on port 1: the apps can only reach Redis through the seed nodes.
    h = new Harness('cluster', `redis://:${PASSWORD}@127.0.0.1:1`);
    const sinks = { billing: await h.sink(), ledger: await h.sink() };
    const env = { REDIS_CLUSTER_NODES: cluster.seeds };
    const { url, config } = await startPipeline(env, sinks);

    const sent = await sendAll(url);
    await expectAllDelivered(sent, sinks);

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

    const sent = await sendAll(url, (i, progress) => {
      if (failoverError) throw failoverError;
      if (i !== Math.floor(MESSAGES / 3)) return;
      failover ??= failOver(progress);
      failover.catch((err: unknown) => (failoverError = err instanceof Error ? err : new Error(String(err))));
    });
    const promoted = await failover!;
    expect(promoted).not.toBe(firstMaster);
    expect(await cluster.masterOfSlot(slot)).toBe(promoted);
    expect(sent.retried.get('REDIS_REPLICAS_UNAVAILABLE')).toBeGreaterThan(0);
    await expectAllDelivered(sent, sinks);

    const redeliveries = Object.values(sinks).reduce((n, s) => n + s.received.length - s.unique().length, 0);
    console.info(
      `cluster failover: ${MESSAGES} messages, slot ${slot} master ${firstMaster.port} -> ${promoted.port}, ` +
        `retried answers ${JSON.stringify(Object.fromEntries(sent.retried))}, ${redeliveries} redeliveries`,
    );
  });
});
