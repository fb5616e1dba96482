/**
 * Resharding a Redis Cluster under reseq: a slot moved to another master the way
 * `redis-cli --cluster reshard` moves it (fixtures/redis-cluster.ts: IMPORTING, MIGRATING, its keys
 * moved a few at a time with MIGRATE, SETSLOT NODE).
 *
 * Step by step, on the store's own operations, with the slot held half moved: a confirmed step
 * (RESEQ_WAIT_REPLICAS) whose keys have moved follows ASK to the target, also a master just added,
 * and WAIT counts the target's replicas (none on the master just added); one whose keys are split
 * waits until they are together; the advance and heartbeat scripts do not stop half way when they empty a key; a
 * lane's control read never answers from the node that lacks a key; a blocked read whose stream
 * moved ends empty and the next one reads on the target.
 *
 * Under a running pipeline (3 masters, 3 replicas; one shard, so one slot holds the whole
 * pipeline): the slot moves to another master and back while ingest takes requests, workers
 * transform and the sender delivers, with RESEQ_WAIT_REPLICAS=1, and to a master just added
 * without it. Every message ingest answered 202 for reaches each destination once (after
 * Idempotency-Key de-duplication), in order, with contiguous sequences, and the pipeline's keys
 * end on the master the slot was moved to.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '@reseq/runtime';
import {
  acquireLeases,
  advanceDelivered,
  connectRedis,
  createRedis,
  ensureWorkerGroup,
  KeySchema,
  readInput,
  readLaneControl,
  renewLeases,
  ReplicasUnavailableError,
  senderHeartbeat,
  type ReseqRedis,
} from '@reseq/store';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uniquePrefix } from '../fixtures/redis.js';
import {
  startRedisCluster,
  type ClusterNode,
  type SlotMigration,
  type SlotMigrationSteps,
  type TestCluster,
} from '../fixtures/redis-cluster.js';
import { expectAllDelivered, sendAll, startPipeline, type Sent } from './cluster-pipeline.js';
import { Harness } from './helpers.js';

const MESSAGES = 300;
/** Keys per MIGRATE and the pause after each: the slot stays half moved for a few seconds. */
const MIGRATION = { batch: 8, pauseMs: 150 };
/** Lease TTLs of the store tests: the first lease, and its renewal (told apart by PTTL). */
const LEASE_MS = 10_000;
const RENEWED_MS = 60_000;

const logger = createLogger({ app: 'test', level: 'silent' });

/** Runs commands on one node's own connection, each after an ASKING (a half-moved slot's target answers then). */
async function askNode(node: ClusterNode, ...commands: (string | number)[][]): Promise<unknown[]> {
  const client = new Redis({ host: '127.0.0.1', port: node.port, maxRetriesPerRequest: 0 });
  try {
    const pipeline = client.pipeline();
    for (const [name, ...args] of commands) pipeline.asking().call(String(name), ...args);
    const replies = (await pipeline.exec()) ?? [];
    return replies.filter((_, i) => i % 2 === 1).map(([err, reply]) => err ?? reply);
  } finally {
    client.disconnect();
  }
}

describe('Redis Cluster resharding, step by step', () => {
  let cluster: TestCluster;
  const opened: ReseqRedis[] = [];
  let migration: SlotMigrationSteps | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  });
  afterAll(async () => {
    for (const redis of opened) redis.disconnect();
    await cluster?.stop();
  });
  afterEach(async () => {
    // Whatever a test left half moved goes to the target, so the next test meets a stable cluster.
    if (migration) await finish(migration);
    migration = undefined;
  });

  /** A connection as workers and senders make it (RESEQ_WAIT_REPLICAS=1 unless `wait` is false). */
  async function connect(options: { wait?: boolean } = {}): Promise<ReseqRedis> {
    const redis = createRedis({
      target: {
        url: cluster.url,
        cluster: { nodes: cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) },
        wait: { replicas: options.wait === false ? 0 : 1, timeoutMs: 1000 },
      },
      name: 'reshard-test',
      logger,
      mode: 'wait',
    });
    opened.push(redis);
    await connectRedis(redis);
    return redis;
  }

  /** A key schema of its own, and the master serving its slot now. */
  async function pipelineKeys(name: string): Promise<{ keys: KeySchema; slot: number; home: ClusterNode }> {
    const keys = new KeySchema(uniquePrefix(name));
    const slot = await cluster.slotOf(keys.input);
    return { keys, slot, home: await cluster.masterOfSlot(slot) };
  }

  /** Another master that serves slots and has a replica (not the one a test added). */
  async function otherMaster(than: ClusterNode): Promise<ClusterNode> {
    for (const master of await cluster.masters()) {
      if (master !== than && (await cluster.replicasOf(master)).length > 0) return master;
    }
    throw new Error('no other master with a replica');
  }

  /** Moves what is left of the slot and gives it to the target. */
  async function finish(steps: SlotMigrationSteps): Promise<void> {
    for (let left = await steps.keysLeft(100); left.length > 0; left = await steps.keysLeft(100)) {
      await steps.moveKeys(left);
    }
    await steps.finish();
  }

  it('sends a confirmed step whose keys moved to the target, with ASKING, and has it confirmed there', async () => {
    const redis = await connect();
    const { keys, slot, home } = await pipelineKeys('reshard-ask');
    const leases = await acquireLeases(redis, keys, 'sender-a', ['billing'], LEASE_MS, 1);
    const target = await otherMaster(home);
    migration = await cluster.startMigration(slot, target);
    await migration.moveKeys([keys.lease('billing'), keys.waitMark]);

    // The source answers ASK for the lease and the mark: the renewal runs on the target.
    expect(await renewLeases(redis, keys, leases, RENEWED_MS)).toEqual([]);
    const [ttl] = await askNode(target, ['PTTL', keys.lease('billing')]);
    expect(Number(ttl)).toBeGreaterThan(LEASE_MS);
  });

  it('sends it to a master just added, which the client has no connection to, where WAIT finds no replica', async () => {
    // Added first: the client's slot map lists masters that serve slots only, so not this one.
    // (Connected last, its next periodic reload of the slot map, which drops a connection to a
    // master without slots, comes seconds after the step.)
    const added = await cluster.addMaster();
    const redis = await connect();
    const { keys, slot } = await pipelineKeys('reshard-new');
    const leases = await acquireLeases(redis, keys, 'sender-a', ['billing'], LEASE_MS, 1);
    migration = await cluster.startMigration(slot, added);
    await migration.moveKeys([keys.lease('billing'), keys.waitMark]);

    // WAIT ran where the writes went: the new master has no replica (the source has one).
    const renewal = renewLeases(redis, keys, leases, RENEWED_MS);
    await expect(renewal).rejects.toBeInstanceOf(ReplicasUnavailableError);
    await expect(renewal).rejects.toMatchObject({ context: { required: 1, confirmed: 0 } });
    const [ttl] = await askNode(added, ['PTTL', keys.lease('billing')]);
    expect(Number(ttl)).toBeGreaterThan(LEASE_MS);
  });

  it('sends a confirmed step whose keys are split between the two nodes again until they are together', async () => {
    const redis = await connect();
    const { keys, slot, home } = await pipelineKeys('reshard-split');
    const leases = await acquireLeases(redis, keys, 'sender-a', ['billing', 'ledger'], LEASE_MS, 2);
    const target = await otherMaster(home);
    const steps = await cluster.startMigration(slot, target);
    migration = steps;
    await steps.moveKeys([keys.lease('billing')]);

    // The source answers TRYAGAIN (it has the ledger lease, not the billing one) until the end.
    const started = performance.now();
    const renewal = renewLeases(redis, keys, leases, RENEWED_MS);
    await sleep(500);
    await finish(steps);
    migration = undefined;
    expect(await renewal).toEqual([]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(500);
    const [billing, ledger] = await askNode(target, ['PTTL', keys.lease('billing')], ['PTTL', keys.lease('ledger')]);
    expect(Number(billing)).toBeGreaterThan(LEASE_MS);
    expect(Number(ledger)).toBeGreaterThan(LEASE_MS);
  });

  it('does not stop the advance script half way when it empties a hash of a slot being moved away', async () => {
    const redis = await connect({ wait: false });
    const { keys, slot, home } = await pipelineKeys('reshard-advance');
    const [leaseValue] = (await acquireLeases(redis, keys, 'sender-a', ['billing'], LEASE_MS, 1)).values();
    // Every key the script names exists (the source runs it only then); the buffer holds 1, the
    // result stream 2 (delivered straight from it).
    await redis.hset(keys.delivered, 'billing', 0);
    await redis.hset(keys.blocked, 'billing', 2, 'ledger', 7);
    await redis.hset(keys.buffer('billing'), 1, 'v\x1fm-1\x1f1000\x1f1\x1f{"n":1}');
    await redis.sadd(keys.skipped('billing'), 0);
    await redis.xadd(keys.history('billing'), '0-1', 'm', 'm-0');
    const second = await redis.xadd(
      keys.results('billing'),
      '*',
      'k',
      'v',
      's',
      2,
      'm',
      'm-2',
      't',
      1000,
      'a',
      1,
      'p',
      '{"n":2}',
    );
    migration = await cluster.startMigration(slot, await otherMaster(home));

    const outcome = await advanceDelivered(redis, keys, [
      { destination: 'billing', leaseValue: leaseValue!, from: 1, to: 2, history: 10, inStream: [[2, second!]] },
    ]);
    expect(outcome).toEqual(['recorded']);
    expect(await redis.hget(keys.delivered, 'billing')).toBe('2');
    expect(await redis.hgetall(keys.blocked)).toEqual({ ledger: '7' });
    expect(await redis.exists(keys.buffer('billing'))).toBe(0);
    expect(await redis.xlen(keys.results('billing'))).toBe(0);
    expect((await redis.xrange(keys.history('billing'), '-', '+')).map(([id]) => id)).toEqual(['0-1', '1-0', '2-0']);
  });

  it('does not stop the heartbeat script half way when it drops the last heartbeat of a slot being moved away', async () => {
    const redis = await connect({ wait: false });
    const { keys, slot, home } = await pipelineKeys('reshard-heartbeat');
    await redis.zadd(keys.senders, Date.now() - 60_000, 'sender-gone');
    migration = await cluster.startMigration(slot, await otherMaster(home));

    // The stale heartbeat is dropped and the caller announced: the set stays.
    expect(await senderHeartbeat(redis, keys, 'sender-a', 10_000, true)).toBe(1);
    expect(await redis.zrange(keys.senders, 0, -1)).toEqual(['sender-a']);
    // Its withdrawal empties the set: it is gone, and nothing touches it after.
    expect(await senderHeartbeat(redis, keys, 'sender-a', 10_000, false)).toBe(0);
    expect(await redis.exists(keys.senders)).toBe(0);
  });

  it("never reads a lane's pause marker from the node that does not have it", async () => {
    const redis = await connect({ wait: false });
    const { keys, slot, home } = await pipelineKeys('reshard-control');
    await redis.hset(keys.paused, 'billing', Date.now());
    await redis.hset(keys.replay('billing'), 'id', 'r-1', 'from', 1, 'requested', 5, 'at', Date.now());
    const steps = await cluster.startMigration(slot, await otherMaster(home));
    migration = steps;
    await steps.moveKeys([keys.replay('billing')]);

    // Split between the nodes: refused (TRYAGAIN), where a pipeline read "not paused" on the target.
    const during = await readLaneControl(redis, keys, 'billing').then(
      (control) => control.paused,
      (err: Error) => err.message.split(' ')[0],
    );
    expect([true, 'TRYAGAIN']).toContain(during);
    await finish(steps);
    migration = undefined;
    expect(await readLaneControl(redis, keys, 'billing')).toMatchObject({
      paused: true,
      replay: { id: 'r-1', from: 1 },
    });
  });

  it('ends a blocked read whose stream moved with nothing read, and reads the stream on the target next', async () => {
    const redis = await connect({ wait: false });
    const blocking = await connect({ wait: false });
    const { keys, slot, home } = await pipelineKeys('reshard-read');
    await ensureWorkerGroup(redis, keys);
    const target = await otherMaster(home);
    migration = await cluster.startMigration(slot, target);

    const read = readInput(blocking, keys, 'worker-1', '>', 10, 10_000);
    await sleep(200); // blocked on the source
    const started = performance.now();
    await migration.moveKeys([keys.input]);
    expect(await read).toEqual({ entries: [], malformed: [], lastId: undefined });
    expect(performance.now() - started).toBeLessThan(5_000);

    // The next read blocks on the target (ASK) and gets what is added there.
    const next = readInput(blocking, keys, 'worker-1', '>', 10, 10_000);
    await sleep(200);
    await redis.xadd(keys.input, '*', 'm', 'm-1', 'd', 'billing', 's', '1', 't', '1000', 'p', '{}');
    const { entries } = await next;
    expect(entries.map((e) => e.id)).toEqual(['m-1']);
  });
});

describe('Redis Cluster resharding under a running pipeline', () => {
  let h: Harness | undefined;
  let cluster: TestCluster | undefined;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h?.dumpLogs(60));
    await h?.cleanup();
    h = undefined;
    await cluster?.stop();
    cluster = undefined;
  });

  /** Where a move sends the slot: another master that serves slots, the first master again, or a master just added. */
  type Destination = 'another master' | 'back' | 'a new master';

  /**
   * Runs the pipeline with `env` and moves its slot as `moves` say, each once the clients have
   * reached message `at` (so that requests flow before, during and after it); then checks the
   * deliveries and where the slot and its keys ended.
   */
  async function reshardUnderLoad(
    name: string,
    env: Record<string, string>,
    moves: readonly { at: number; to: Destination }[],
  ): Promise<void> {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    h = new Harness(name, cluster.url);
    const sinks = { billing: await h.sink(), ledger: await h.sink() };
    const slot = await cluster.slotOf(h.key('in'));
    const home = await cluster.masterOfSlot(slot);
    const away = (await cluster.masters()).find((m) => m !== home)!;
    const added = moves.some((m) => m.to === 'a new master') ? await cluster.addMaster() : undefined;
    const targets = moves.map(({ to }) => (to === 'back' ? home : to === 'another master' ? away : added!));
    const { url } = await startPipeline(h, { REDIS_CLUSTER_NODES: cluster.seeds, ...env }, sinks);

    const migrations: SlotMigration[] = [];
    let migrating: Promise<void> | undefined;
    let migrationError: Error | undefined;
    const reach: (() => void)[] = [];
    const reached = moves.map(() => new Promise<void>((resolve) => reach.push(resolve)));
    const migrateAll = async (): Promise<void> => {
      for (const [n, to] of targets.entries()) {
        await reached[n];
        migrations.push(await cluster!.migrateSlot(slot, to, MIGRATION));
      }
    };
    const sent: Sent = await sendAll(url, MESSAGES, (i) => {
      if (migrationError) throw migrationError;
      const n = moves.findIndex((m) => m.at === i);
      if (n < 0) return;
      reach[n]!();
      migrating ??= migrateAll().catch((err: unknown) => {
        migrationError = err instanceof Error ? err : new Error(String(err));
      });
    });
    await migrating;
    if (migrationError) throw migrationError;
    await expectAllDelivered(sent, sinks, MESSAGES);

    // The slot moved each time, with the pipeline's keys, and ended where it was sent last.
    expect(migrations.map((m) => m.from)).toEqual([home, ...targets.slice(0, -1)]);
    for (const m of migrations) expect(m.keys).toBeGreaterThan(10);
    const final = targets[targets.length - 1]!;
    expect(await cluster.masterOfSlot(slot)).toBe(final);
    expect(await countKeysInSlot(final, slot)).toBeGreaterThan(0);
    for (const other of [home, away]) if (other !== final) expect(await countKeysInSlot(other, slot)).toBe(0);
    const client = cluster.client();
    expect(await client.hget(h.key('seq'), 'billing')).toBe(String(MESSAGES));
    expect(await client.hget(h.key('pos'), 'ledger')).toBe(String(Math.ceil(MESSAGES / 3)));
    // The slot was half moved while ingest took requests: some were refused (and retried).
    expect(sent.retried.get('REDIS_UNAVAILABLE') ?? 0).toBeGreaterThan(0);

    const redeliveries = Object.values(sinks).reduce((n, s) => n + s.received.length - s.unique().length, 0);
    console.info(
      `${name}: ${MESSAGES} messages, slot ${slot} moved ${[home, ...targets].map((m) => m.port).join(' -> ')} ` +
        `(${migrations.map((m) => `${m.keys} keys in ${m.batches} batches`).join(', ')}), ` +
        `retried answers ${JSON.stringify(Object.fromEntries(sent.retried))}, ${redeliveries} redeliveries`,
    );
  }

  /** CLUSTER COUNTKEYSINSLOT on one node. */
  async function countKeysInSlot(node: ClusterNode, slot: number): Promise<number> {
    const client = h!.client(`redis://127.0.0.1:${node.port}`);
    try {
      return Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', slot));
    } finally {
      client.disconnect();
    }
  }

  it('loses and reorders nothing while its slot moves to another master and back (WAIT 1)', async () => {
    await reshardUnderLoad('reshard-wait', { RESEQ_WAIT_REPLICAS: '1', RESEQ_WAIT_TIMEOUT_MS: '500' }, [
      { at: Math.floor(MESSAGES / 4), to: 'another master' },
      { at: Math.floor((MESSAGES * 2) / 3), to: 'back' },
    ]);
  });

  it('loses and reorders nothing while its slot moves to a master just added (no WAIT)', async () => {
    await reshardUnderLoad('reshard-new', {}, [{ at: Math.floor(MESSAGES / 3), to: 'a new master' }]);
  });
});
