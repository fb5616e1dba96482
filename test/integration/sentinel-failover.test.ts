/**
 * Redis failover under Sentinel with `RESEQ_WAIT_REPLICAS=1`: the real apps reach Redis through
 * three sentinels; the master is SIGKILLed mid-run, a sentinel promotes the replica, and the old
 * master comes back as the new master's replica. Every message ingest answered 202 for must be
 * delivered exactly once (after Idempotency-Key de-duplication), in order, with contiguous
 * sequences. And without enough replicas, ingest acknowledges nothing: 503 with a coded error.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import { startRedisNode, startSentinelGroup, type RedisNode, type SentinelGroup } from '../fixtures/sentinel.js';
import { expectDelivered, Harness, ingestUrl, pipelineConfig, post, range, TEST_TRANSFORM } from './helpers.js';

const MESSAGES = 300;
const CLIENTS = 4;

describe('Redis failover under Sentinel', () => {
  let h: Harness | undefined;
  let group: SentinelGroup | undefined;
  const nodes: RedisNode[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h?.dumpLogs(60));
    await h?.cleanup();
    h = undefined;
    await group?.stop();
    group = undefined;
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('loses nothing acknowledged and reorders nothing when the master is SIGKILLed (WAIT 1)', async () => {
    group = await startSentinelGroup({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 5000 });
    const firstMaster = await group.masterPort();
    h = new Harness('sentinel-failover', group.node(firstMaster).url);
    const sink = await h.sink();
    const config = await h.config(
      pipelineConfig({ billing: { url: sink.url } }, { sender: { leaseTtlMs: 3000 }, worker: { claimIdleMs: 2000 } }),
    );
    const env = {
      REDIS_SENTINELS: group.sentinels,
      REDIS_SENTINEL_NAME: group.name,
      RESEQ_WAIT_REPLICAS: '1',
      RESEQ_WAIT_TIMEOUT_MS: '500',
    };
    const ingest = await h.start('ingest', config, env);
    for (const n of [1, 2]) {
      await h.start('transform-worker', config, {
        ...env,
        RESEQ_CONSUMER_NAME: `sentinel-worker-${n}`,
        TRANSFORM_MODULE: TEST_TRANSFORM,
        RESEQ_TEST_MAX_DELAY_MS: '20',
      });
    }
    await h.start('resequencer-sender', config, env);
    const url = `${ingestUrl(ingest)}/v1/messages`;

    // What ingest acknowledged: message id -> sequence; and the retryable answers on the way.
    const acknowledged = new Map<string, number>();
    const retried = new Map<string, number>();
    let next = 0;
    let failover: Promise<number> | undefined;
    let failoverError: Error | undefined;

    const failOver = async (): Promise<number> => {
      await group!.node(firstMaster).kill();
      const newMaster = await group!.waitForFailover(firstMaster, 30_000);
      // The new master has no replica yet: writes there are not confirmed, and ingest says so.
      await waitFor(() => (retried.get('REDIS_REPLICAS_UNAVAILABLE') ?? 0) > 0, 'an unconfirmed write', 15_000);
      await sleep(1000);
      // The old master returns empty, as a replica of the new one: WAIT 1 can succeed again.
      await group!.node(firstMaster).start({ replicaOf: newMaster });
      await group!.waitForReplicas(newMaster, 1, 30_000);
      return newMaster;
    };

    const client = async (): Promise<void> => {
      for (let i = next++; i < MESSAGES; i = next++) {
        if (i === Math.floor(MESSAGES / 3)) {
          failover ??= failOver();
          failover.catch((err: unknown) => (failoverError = err instanceof Error ? err : new Error(String(err))));
        }
        const id = `m-${i}-${randomUUID().slice(0, 8)}`;
        for (;;) {
          const answer = await post(url, { id, destination: 'billing', payload: { i } }).catch(() => undefined);
          if (answer?.status === 202) {
            const sequence = (answer.body.sequences as Record<string, number>).billing!;
            expect(acknowledged.has(id), `${id} acknowledged twice`).toBe(false);
            acknowledged.set(id, sequence);
            break;
          }
          if (answer && answer.status !== 503 && answer.status !== 429) {
            throw new Error(`ingest answered ${answer.status}: ${answer.text}`);
          }
          // A lost connection or a retryable answer: the same id again, as the contract says.
          if (failoverError) throw failoverError;
          const code = answer ? String(answer.body.code) : 'CONNECTION_LOST';
          retried.set(code, (retried.get(code) ?? 0) + 1);
          await sleep(100);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, () => client()));
    const newMaster = await failover!;
    expect(newMaster).not.toBe(firstMaster);
    expect(retried.get('REDIS_REPLICAS_UNAVAILABLE')).toBeGreaterThan(0);

    // Ingest's answers: one sequence per message, 1..N without a gap.
    expect([...acknowledged.values()].sort((a, b) => a - b)).toEqual(range(1, MESSAGES));
    await waitFor(() => sink.unique().length >= MESSAGES, 'every acknowledged message delivered', 30_000);
    await sleep(300); // a late duplicate or stray delivery would show now
    expectDelivered(sink, range(1, MESSAGES));
    for (const delivery of sink.unique()) {
      expect(acknowledged.get(delivery.messageId), `message at ${delivery.sequence}`).toBe(delivery.sequence);
    }
    const unconfirmedLogs = h.apps
      .filter((app) => app.name === 'resequencer-sender')
      .flatMap((app) => app.logs)
      .filter((l) => JSON.stringify(l).includes('REDIS_REPLICAS_UNAVAILABLE')).length;
    console.info(
      `sentinel failover: ${MESSAGES} messages, master ${firstMaster} -> ${newMaster}, ` +
        `retried answers ${JSON.stringify(Object.fromEntries(retried))}, ` +
        `${sink.received.length - MESSAGES} redeliveries, ${unconfirmedLogs} unconfirmed sender steps logged`,
    );
  });

  it('answers 503 REDIS_REPLICAS_UNAVAILABLE without enough replicas, and 202 once one confirms', async () => {
    const master = await startRedisNode();
    nodes.push(master);
    h = new Harness('wait-replicas', master.url);
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const ingest = await h.start('ingest', config, { RESEQ_WAIT_REPLICAS: '1', RESEQ_WAIT_TIMEOUT_MS: '200' });
    const url = `${ingestUrl(ingest)}/v1/messages`;
    const body = { id: 'order-1', destination: 'billing', payload: { n: 1 } };

    for (let attempt = 1; attempt <= 2; attempt++) {
      const answer = await post(url, body);
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('REDIS_REPLICAS_UNAVAILABLE');
      expect(answer.headers.get('retry-after')).toBe('1');
    }
    // The first attempt's write is on the master, unconfirmed and unacknowledged; the retry
    // found it by its id and wrote nothing more.
    expect(await h.redis.xlen(h.key('in'))).toBe(1);
    expect(await h.redis.hget(h.key('seq'), 'billing')).toBe('1');

    const replica = await startRedisNode({ replicaOf: master.port });
    nodes.push(replica);
    let accepted: Record<string, unknown> | undefined;
    await waitFor(
      async () => {
        const answer = await post(url, body);
        if (answer.status === 202) accepted = answer.body;
        return accepted !== undefined;
      },
      'a 202 once the replica confirms',
      20_000,
    );
    // The retry confirmed the stored write: the same sequence, still one entry.
    expect(accepted).toEqual({ id: 'order-1', sequences: { billing: 1 } });
    expect(await h.redis.xlen(h.key('in'))).toBe(1);
  });
});
