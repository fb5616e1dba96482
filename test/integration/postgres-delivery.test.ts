/**
 * Delivery into PostgreSQL, exactly once: the adapter on its own (batches, a redelivery that
 * inserts nothing, a refused payload), then the real apps through a worker and a sender SIGKILL
 * (the sender between PostgreSQL's commit and Redis's advance) and a PostgreSQL restart, with an
 * HTTP destination beside it that keeps flowing while PostgreSQL is down. Each test has its own
 * database on the machine's PostgreSQL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PostgresDelivery, type DeliveryOutcome } from '@reseq/delivery';
import { parseConfig, type PostgresDestinationConfig } from '@reseq/config';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import {
  createTestDatabase,
  pgCluster,
  postgresAvailable,
  waitForPostgres,
  type TestDatabase,
} from '../fixtures/postgres.js';
import {
  deadLetters,
  expectDelivered,
  Harness,
  pipelineConfig,
  range,
  TEST_TRANSFORM,
  type TestDestination,
} from './helpers.js';

/** The line fault-point.ts writes just before the SIGKILL. */
const faultFired = (point: string) => (line: Record<string, unknown>) =>
  line.msg === 'RESEQ_FAULT: killing this process' && line.faultPoint === point;

interface Row {
  sequence: string;
  message_id: string;
  payload: { n?: number; sequence?: number; transformed?: boolean };
}

async function rows(db: TestDatabase, table = 'events'): Promise<Row[]> {
  return (await db.query<Row>(`SELECT sequence, message_id, payload FROM ${table} ORDER BY sequence`)).rows;
}

async function position(db: TestDatabase, destination: string): Promise<number | undefined> {
  try {
    const result = await db.query<{ delivered: string }>(
      'SELECT delivered FROM reseq_positions WHERE destination = $1',
      [destination],
    );
    return result.rows[0] ? Number(result.rows[0].delivered) : undefined;
  } catch (err) {
    // Before the sender's first transaction there is no table yet.
    if ((err as { code?: string }).code === '42P01') return undefined;
    throw err;
  }
}

/** Rows 1..count, each once, in order, carrying its message's id and transformed payload. */
async function expectExactlyOnce(db: TestDatabase, destination: string, count: number): Promise<void> {
  const got = await rows(db);
  expect(got.map((r) => Number(r.sequence))).toEqual(range(1, count));
  for (const row of got) {
    const sequence = Number(row.sequence);
    expect(row.message_id).toBe(`m${row.payload.n}`);
    expect(row.payload).toMatchObject({ transformed: true, sequence });
  }
  expect(new Set(got.map((r) => r.message_id)).size).toBe(count);
  expect(await position(db, destination)).toBe(count);
}

describe.skipIf(!(await postgresAvailable()))('delivery into PostgreSQL', () => {
  const databases: TestDatabase[] = [];
  let h: Harness | undefined;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && h) console.error(h.dumpLogs(30));
    await h?.cleanup();
    h = undefined;
    // A fault test may have left the server stopped: never leave it so.
    await pgCluster('start').catch(() => undefined);
    await waitForPostgres();
    await Promise.all(databases.splice(0).map((db) => db.drop()));
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    databases.push(db);
    return db;
  }

  function adapterConfig(db: TestDatabase, fields: Record<string, unknown> = {}): PostgresDestinationConfig {
    const config = parseConfig(
      {},
      { destinations: { ledger: { type: 'postgres', url: db.url, table: 'events', ...fields } } },
    );
    return config.destinations.ledger as PostgresDestinationConfig;
  }

  const request = (sequence: number, payload = JSON.stringify({ sequence })) => ({
    destination: 'ledger',
    sequence,
    messageId: `id-${sequence}`,
    payload,
  });

  it('the adapter: creates its tables, batches what waits, redelivers without inserting, dead-letters a refused payload', async () => {
    const db = await database();
    const delivery = new PostgresDelivery(adapterConfig(db, { window: 50 }));
    try {
      // 120 sends at once: committed in a few transactions, not 120.
      const first = await Promise.all(range(1, 120).map((n) => delivery.send(request(n))));
      expect(first.every((o) => o.ok)).toBe(true);
      expect((await rows(db)).map((r) => Number(r.sequence))).toEqual(range(1, 120));
      expect(await position(db, 'ledger')).toBe(120);
      const transactions = await db.query<{ n: string }>('SELECT count(DISTINCT delivered_at) AS n FROM events');
      expect(Number(transactions.rows[0]!.n)).toBeLessThanOrEqual(10);

      // A sender that crashed before Redis's advance sends 101..130 again: 101..120 insert nothing.
      const again = await Promise.all(range(101, 130).map((n) => delivery.send(request(n, '{"again":true}'))));
      expect(again.every((o) => o.ok)).toBe(true);
      const got = await rows(db);
      expect(got.map((r) => Number(r.sequence))).toEqual(range(1, 130));
      expect(got[110]!.payload).toEqual({ sequence: 111 });
      expect(got[125]!.payload).toEqual({ again: true });

      // A payload PostgreSQL refuses: the rows before it commit, it fails for good, the rest retry.
      const mixed: DeliveryOutcome[] = await Promise.all([
        delivery.send(request(131)),
        delivery.send(request(132, '{"bad":"\\u0000"}')),
        delivery.send(request(133)),
      ]);
      expect(mixed[0]).toEqual({ ok: true });
      expect(mixed[1]).toMatchObject({ ok: false, retryable: false });
      expect(mixed[1]!.ok === false && mixed[1]!.error).toContain('22P05');
      expect(mixed[2]).toMatchObject({ ok: false, retryable: true });
      expect(await position(db, 'ledger')).toBe(131);
      expect(await delivery.send(request(132, '{"fixed":true}'))).toEqual({ ok: true });
      expect(await delivery.send(request(133))).toEqual({ ok: true });
      expect(await position(db, 'ledger')).toBe(133);
    } finally {
      await delivery.close();
    }
  });

  it('the adapter: PostgreSQL down is a retryable failure; it writes again once the server is back', async () => {
    const db = await database();
    const delivery = new PostgresDelivery(adapterConfig(db, { timeoutMs: 2_000 }));
    try {
      expect(await delivery.send(request(1))).toEqual({ ok: true });
      await pgCluster('stop');
      const down = await delivery.send(request(2));
      expect(down).toMatchObject({ ok: false, retryable: true });
      // Nothing above a failed row goes in until the lane starts again at it.
      await pgCluster('start');
      await waitForPostgres();
      expect(await delivery.send(request(3))).toMatchObject({ ok: false, retryable: true });
      expect((await rows(db)).map((r) => Number(r.sequence))).toEqual([1]);
      expect(await delivery.send(request(2))).toEqual({ ok: true });
      expect((await rows(db)).map((r) => Number(r.sequence))).toEqual([1, 2]);
    } finally {
      await delivery.close();
    }
  });

  /** A pipeline with PostgreSQL destination `ledger` (and HTTP ones beside it). */
  async function pipeline(
    db: TestDatabase,
    http: Record<string, TestDestination> = {},
    fields: Record<string, unknown> = {},
  ) {
    const config = pipelineConfig(http, { sender: { leaseTtlMs: 1_000 } });
    (config.destinations as Record<string, unknown>).ledger = {
      type: 'postgres',
      url: db.url,
      table: 'events',
      window: 64,
      timeoutMs: 2_000,
      retry: { baseMs: 50, maxMs: 500 },
      ...fields,
    };
    const path = await h!.config(config);
    const ingest = await h!.start('ingest', path);
    return { path, ingest };
  }

  async function sendMany(ingest: AppProcess, destinations: string[], from: number, to: number, parallel = 8) {
    for (let start = from; start <= to; start += parallel) {
      const batch = range(start, Math.min(to, start + parallel - 1));
      await Promise.all(batch.map((n) => h!.send(ingest, { destinations, payload: { n }, id: `m${n}` })));
    }
  }

  it('1,200 messages through a worker SIGKILL and a sender SIGKILL after the commit: rows 1..n, exactly once, in order', async () => {
    const db = await database();
    h = new Harness('pg exactly once', inject('redisUrl'));
    const { path, ingest } = await pipeline(db);
    const worker = await h.start('transform-worker', path, {
      TRANSFORM_MODULE: TEST_TRANSFORM,
      RESEQ_TEST_MAX_DELAY_MS: '5',
    });
    await h.start('transform-worker', path, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    // The doomed sender holds the lease first; it dies on its 4th window, committed in
    // PostgreSQL but not yet recorded in Redis.
    const doomed = await h.start('resequencer-sender', path, { RESEQ_FAULT: 'sender-after-2xx:4' });
    expect(await h.redis.exists(h.key('lease:ledger'))).toBe(1);
    // Where things stood when it died: PostgreSQL committed a window Redis does not know of.
    const atDeath = doomed.exited.then(async () => ({
      redis: Number(await h!.redis.hget(h!.key('pos'), 'ledger')),
      postgres: await position(db, 'ledger'),
    }));
    await h.start('resequencer-sender', path);

    const sending = sendMany(ingest, ['ledger'], 1, 1_200);
    await waitFor(async () => (await position(db, 'ledger')) !== undefined, 'first rows', 30_000);
    expect(await worker.kill()).toBe('SIGKILL');
    await sending;
    expect(await doomed.exited).toBe('SIGKILL');
    await doomed.waitForLog(faultFired('sender-after-2xx'), 1_000);
    const { redis, postgres } = await atDeath;
    expect(postgres).toBeGreaterThan(redis);

    await waitFor(async () => (await position(db, 'ledger')) === 1_200, 'every row', 60_000);
    await waitFor(async () => (await h!.redis.hget(h!.key('pos'), 'ledger')) === '1200', 'Redis to agree', 10_000);
    await expectExactlyOnce(db, 'ledger', 1_200);
  });

  it('PostgreSQL stopped and restarted mid-run: the destination waits, the HTTP one beside it flows, then it catches up exactly once', async () => {
    const db = await database();
    h = new Harness('pg restart', inject('redisUrl'));
    const sink = await h.sink();
    const { path, ingest } = await pipeline(db, { web: { url: sink.url } });
    await h.start('transform-worker', path, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    const sender = await h.start('resequencer-sender', path);

    await sendMany(ingest, ['web', 'ledger'], 1, 300);
    await waitFor(async () => (await position(db, 'ledger')) === 300, 'first rows', 30_000);

    await pgCluster('stop');
    await sendMany(ingest, ['web', 'ledger'], 301, 600);
    await waitFor(() => sink.unique().length >= 600, 'HTTP to flow while PostgreSQL is down', 30_000);
    await sender.waitForLog((l) => String(l.msg).startsWith('delivery failed'), 10_000);
    await pgCluster('start');
    await waitForPostgres();

    // A restart while rows are flowing.
    const sending = sendMany(ingest, ['web', 'ledger'], 601, 1_000);
    await waitFor(async () => ((await position(db, 'ledger')) ?? 0) > 600, 'catching up', 30_000);
    await pgCluster('restart');
    await sending;
    await waitForPostgres();

    await waitFor(async () => (await position(db, 'ledger')) === 1_000, 'every row', 60_000);
    await waitFor(() => sink.unique().length >= 1_000, 'every HTTP delivery', 30_000);
    await sleep(200);
    await expectExactlyOnce(db, 'ledger', 1_000);
    expectDelivered(sink, range(1, 1_000));
  });

  it('a payload PostgreSQL refuses becomes a DELIVERY_REJECTED dead letter (onDeadLetter: skip); the rows around it go in', async () => {
    const db = await database();
    h = new Harness('pg refused payload', inject('redisUrl'));
    const { path, ingest } = await pipeline(db, {}, { onDeadLetter: 'skip' });
    await h.start('transform-worker', path, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    await h.start('resequencer-sender', path);
    for (let n = 1; n <= 20; n++)
      await h.send(ingest, {
        destination: 'ledger',
        payload: n === 7 ? { n, text: 'nul \u0000' } : { n },
        id: `m${n}`,
      });
    await waitFor(async () => (await position(db, 'ledger')) === 20, 'every other row', 30_000);
    const got = await rows(db);
    expect(got.map((r) => Number(r.sequence))).toEqual(range(1, 20).filter((n) => n !== 7));
    const dead = await deadLetters(h);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ d: 'ledger', s: '7', m: 'm7' });
    expect(JSON.stringify(dead[0])).toContain('22P05');
  });
});
