/**
 * The operator CLI as an operator runs it (`node apps/cli/dist/main.js ...`, and once as
 * `pnpm reseq ...`), against pipelines that the real apps brought into a known state: a
 * destination blocked by a dead letter, `status` and `dlq list` showing it, `dlq retry`
 * delivering it in its own place (transform and delivery stage), `dlq skip` moving on, and
 * every refusal with its exit status and one-line reason.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fixturePath, waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { expectDelivered, freePort, Harness, pipelineConfig, range, type TestDestination } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'apps', 'cli', 'dist', 'main.js');
const POISON_UNTIL_FILE = fixturePath('transforms', 'poison-until-file.mjs');

/** What one CLI run printed and how it ended. */
interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command line (by default `node apps/cli/dist/main.js`) with only the given environment. */
async function run(
  args: readonly string[],
  env: Record<string, string>,
  command = [process.execPath, CLI],
): Promise<CliRun> {
  const started = Date.now();
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr, ms: Date.now() - started };
}

/** Expects a failure: that exit status, and exactly one line on stderr matching `reason`. */
function expectRefused(result: CliRun, code: number, reason: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(reason);
}

interface StatusJson {
  destinations: Record<
    string,
    { assigned: number; delivered: number; deadLettered: number; blocked: boolean; [extra: string]: unknown }
  >;
}

interface DeadLetterJson {
  destination: string;
  sequence: number;
  id: string;
  attempts: number;
  lastError: string;
  stage: string;
  state: string;
  acceptedAt: string;
  payload: unknown;
}

describe('reseq CLI', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  async function pipeline(
    name: string,
    destinations: Record<string, Omit<TestDestination, 'url'>>,
  ): Promise<{
    sinks: Record<string, HttpSink>;
    config: string;
    ingest: AppProcess;
    cli: (...args: string[]) => Promise<CliRun>;
  }> {
    h = new Harness(name, inject('redisUrl'));
    const sinks: Record<string, HttpSink> = {};
    for (const d of Object.keys(destinations)) sinks[d] = await h.sink();
    const config = await h.config(
      pipelineConfig(
        Object.fromEntries(Object.entries(destinations).map(([d, o]) => [d, { ...o, url: sinks[d]!.url }])),
      ),
    );
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: POISON_UNTIL_FILE, RESEQ_TEST_MAX_DELAY_MS: '20' });
    await h.start('resequencer-sender', config);
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    return { sinks, config, ingest, cli: (...args) => run(args, env) };
  }

  async function json<T>(result: Promise<CliRun>): Promise<T> {
    const { code, stdout, stderr } = await result;
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout) as T;
  }

  it('shows a blocked destination, then retries its dead letters into their own places', async () => {
    const { sinks, config, ingest, cli } = await pipeline('cli retry', { billing: {}, audit: {} });
    const fixed = join(dirname(config), 'fixed');
    // audit refuses its message 2 with a 400 (a delivery-stage dead letter) until it is fixed.
    let auditFixed = false;
    sinks.audit!.respond = (d) => (d.sequence === 2 && !auditFixed ? 400 : 200);
    for (const n of [1, 2]) await h.send(ingest, { destination: 'billing', payload: { n } });
    const poison = await h.send(ingest, {
      destination: 'billing',
      payload: { n: 3, poisonUntil: fixed },
      id: 'poison-3',
    });
    for (const n of [4, 5]) await h.send(ingest, { destination: 'billing', payload: { n } });
    for (const n of [1, 2, 3]) await h.send(ingest, { destination: 'audit', payload: { n } });
    expect(poison.sequences).toEqual({ billing: 3 });

    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'billing')) === '3', 'billing blocked at 3');
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'audit')) === '2', 'audit blocked at 2');
    await waitFor(() => sinks.billing!.unique().length >= 2, 'billing to get 1 and 2');

    const status = await json<StatusJson>(cli('status', '--json'));
    expect(Object.keys(status)).toEqual(['destinations']);
    expect(status.destinations.billing).toMatchObject({ assigned: 5, delivered: 2, deadLettered: 1, blocked: true });
    expect(status.destinations.billing!.blockedAt).toBe(3);
    expect(status.destinations.audit).toMatchObject({ assigned: 3, delivered: 1, deadLettered: 1, blocked: true });
    const table = await cli('status');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^billing +5 +2 .* yes, at 3/m);

    const { deadLetters } = await json<{ deadLetters: DeadLetterJson[] }>(cli('dlq', 'list', '--json'));
    expect(deadLetters).toEqual([
      expect.objectContaining({ destination: 'audit', sequence: 2, attempts: 1, stage: 'delivery', state: 'blocking' }),
      expect.objectContaining({
        destination: 'billing',
        sequence: 3,
        id: 'poison-3',
        attempts: 1,
        stage: 'transform',
        state: 'blocking',
        payload: { n: 3, poisonUntil: fixed },
      }),
    ]);
    expect(deadLetters[0]!.lastError).toMatch(/^DELIVERY_REJECTED: .*400/);
    // The oldest unsettled message of a blocked destination is its dead letter: the lag in
    // seconds counts from its accept time, and nothing is in flight (all of it is transformed).
    expect(status.destinations.billing!.inFlight).toBe(0);
    expect(new Date(Number(status.destinations.billing!.oldestUnsettledAt)).toISOString()).toBe(
      deadLetters[1]!.acceptedAt,
    );
    expect(deadLetters[1]!.lastError).toMatch(/^TRANSFORM_PERMANENT: .*poison until/);
    const list = await cli('dlq', 'list', 'billing');
    expect(list.stdout).toMatch(/^billing +3 +poison-3 +transform +blocking +1 /m);
    const show = await cli('dlq', 'show', 'billing', '3');
    expect(show.stdout).toMatch(/^last error: +TRANSFORM_PERMANENT/m);

    // Still broken: a retry dead-letters it again, and billing stays blocked at 3.
    expect((await cli('dlq', 'retry', 'billing', '3')).code).toBe(0);
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'billing')) === '3', 'billing blocked at 3 again');
    await waitFor(async () => (await h.redis.hlen(h.key('dead:billing'))) === 1, 'the new dead letter');
    expect(sinks.billing!.unique()).toHaveLength(2);

    // Fixed: the retry delivers 3 in its place, then 4 and 5.
    await writeFile(fixed, '');
    const retried = await cli('dlq', 'retry', 'billing', '3');
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/^retried billing 3: /);
    auditFixed = true;
    expect((await cli('dlq', 'retry', 'audit', '2')).code).toBe(0);

    await waitFor(() => sinks.billing!.unique().length >= 5, 'billing to get 3, 4 and 5', 15_000);
    await waitFor(() => sinks.audit!.unique().length >= 3, 'audit to get 2 and 3', 15_000);
    expectDelivered(sinks.billing!, range(1, 5));
    expectDelivered(sinks.audit!, range(1, 3));
    const third = sinks.billing!.unique()[2]!;
    expect(third.messageId).toBe('poison-3');
    expect(third.body).toMatchObject({ n: 3, transformed: true, sequence: 3 });

    const after = await json<StatusJson>(cli('status', '--json'));
    expect(after.destinations.billing).toMatchObject({ assigned: 5, delivered: 5, deadLettered: 0, blocked: false });
    expect(after.destinations.audit).toMatchObject({ assigned: 3, delivered: 3, deadLettered: 0, blocked: false });
    expect(await json<{ deadLetters: unknown[] }>(cli('dlq', 'list', '--json'))).toEqual({ deadLetters: [] });
    expectRefused(await cli('dlq', 'retry', 'billing', '3'), 4, /^reseq: billing has no dead letter at sequence 3$/);
  });

  it('skips a dead letter on a blocked destination; refuses to retry one a "skip" destination passed', async () => {
    const { sinks, ingest, cli } = await pipeline('cli skip', { billing: {}, ledger: { onDeadLetter: 'skip' } });
    for (const n of [1, 2, 3, 4]) {
      await h.send(ingest, { destinations: ['billing', 'ledger'], payload: n === 2 ? { n, poison: true } : { n } });
    }
    await waitFor(async () => (await h.redis.hget(h.key('blocked'), 'billing')) === '2', 'billing blocked at 2');
    await waitFor(() => sinks.ledger!.unique().length >= 3, 'ledger to get 1, 3 and 4');
    expectDelivered(sinks.ledger!, [1, 3, 4]);
    expectDelivered(sinks.billing!, [1]);

    const status = await json<StatusJson>(cli('status', '--json'));
    expect(status.destinations.billing).toMatchObject({ assigned: 4, delivered: 1, deadLettered: 1, blocked: true });
    expect(status.destinations.ledger).toMatchObject({ assigned: 4, delivered: 4, deadLettered: 1, blocked: false });

    const skipped = await cli('dlq', 'skip', 'billing', '2');
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout).toMatch(/^skipped billing 2: /);
    await waitFor(() => sinks.billing!.unique().length >= 3, 'billing to get 3 and 4', 15_000);
    expectDelivered(sinks.billing!, [1, 3, 4]);

    // ledger moved past its dead letter on its own: it cannot be retried in its place any more.
    expectRefused(await cli('dlq', 'retry', 'ledger', '2'), 5, /^reseq: ledger has already passed sequence 2 /);
    const removed = await cli('dlq', 'skip', 'ledger', '2', '--json');
    expect(JSON.parse(removed.stdout)).toEqual({
      destination: 'ledger',
      sequence: 2,
      skipped: true,
      outcome: 'removed',
    });

    const after = await json<StatusJson>(cli('status', '--json'));
    expect(after.destinations.billing).toMatchObject({ delivered: 4, deadLettered: 0, blocked: false, skipped: 1 });
    expect(after.destinations.ledger).toMatchObject({ delivered: 4, deadLettered: 0, blocked: false, skipped: 1 });
  });

  it('pauses a destination (messages are accepted and transformed, not delivered), resumes it in order; inspect shows the raw state', async () => {
    const { sinks, ingest, cli } = await pipeline('cli pause', { billing: {}, audit: {} });
    for (const n of [1, 2]) await h.send(ingest, { destination: 'billing', payload: { n } });
    await waitFor(() => sinks.billing!.unique().length >= 2, 'billing to get 1 and 2');

    const paused = await json<{ destination: string; paused: boolean; since: number; changed: boolean }>(
      cli('destination', 'pause', 'billing', '--json'),
    );
    expect(paused).toMatchObject({ destination: 'billing', paused: true, changed: true });
    expect((await cli('destination', 'pause', 'billing')).stdout).toMatch(/^billing was paused already/);
    // The sender reads the marker at most once a second (no round trip per message).
    await new Promise((r) => setTimeout(r, 1_500));
    for (const n of [3, 4, 5]) await h.send(ingest, { destination: 'billing', payload: { n } });
    await h.send(ingest, { destination: 'audit', payload: { n: 1 } });
    await waitFor(() => sinks.audit!.unique().length >= 1, 'audit, not paused, to get 1');
    await waitFor(async () => {
      const s = (await json<StatusJson>(cli('status', '--json'))).destinations.billing!;
      return Number(s.buffered) + Number(s.pendingResults) === 3;
    }, 'billing 3, 4 and 5 transformed and waiting');
    await new Promise((r) => setTimeout(r, 2_500));
    expectDelivered(sinks.billing!, [1, 2]);

    const status = await json<StatusJson>(cli('status', '--json'));
    expect(status.destinations.billing).toMatchObject({ assigned: 5, delivered: 2, paused: true, blocked: false });
    expect(status.destinations.billing!.pausedSince).toBe(paused.since);
    expect(status.destinations.audit).toMatchObject({ paused: false, pausedSince: null });
    const table = await cli('status');
    // ASSIGNED DELIVERED LAG LAG (S) IN FLIGHT (all three transformed: none) DEAD LETTERS BLOCKED PAUSED
    expect(table.stdout).toMatch(/^billing +5 +2 +3 +\d+\.\d +0 +0 +no +yes /m);
    expect(table.stdout).toContain("paused: billing; see 'pnpm reseq destination resume <destination>'");

    // inspect: the raw picture, with the redis-cli commands on the real key names.
    interface InspectJson {
      prefix: string;
      input: {
        key: string;
        length: { value: number; command: string };
        groups: { value: { name: string; consumers: number; pending: number; lag: number | null }[] };
        pending: { value: { total: number; consumers: Record<string, number> }; command: string };
      };
      hashes: Record<string, { key: string; value: Record<string, string>; command: string }>;
      destinations: Record<
        string,
        {
          results: { key: string; value: number };
          buffer: { value: number };
          history: { value: number; command: string };
          replay: { value: Record<string, string> | null };
          lease: { value: string | null; command: string };
        }
      >;
      hedges: { length: { value: number; command: string } };
    }
    const raw = await json<InspectJson>(cli('inspect', '--json'));
    expect(raw.prefix).toBe(h.prefix);
    expect(raw.input.key).toBe(h.key('in'));
    expect(raw.input.length.value).toBe(await h.redis.xlen(h.key('in')));
    expect(raw.input.length.command).toBe(`redis-cli XLEN '${h.key('in')}'`);
    expect(raw.input.groups.value).toEqual([expect.objectContaining({ name: 'workers', pending: 0 })]);
    expect(raw.input.groups.value[0]!.consumers).toBeGreaterThanOrEqual(1);
    expect(raw.input.pending.value.total).toBe(0);
    expect(raw.hashes.paused!.value).toEqual({ billing: String(paused.since) });
    expect(raw.hashes.sequences!.value).toEqual({ billing: '5', audit: '1' });
    expect(raw.hashes.delivered!.command).toBe(`redis-cli HGETALL '${h.key('pos')}'`);
    const billing = raw.destinations.billing!;
    expect(billing.results.key).toBe(h.key('res:billing'));
    expect(billing.results.value + billing.buffer.value).toBeGreaterThanOrEqual(3);
    expect(billing.lease.value).toMatch(/\|\d+$/);
    expect(billing.lease.command).toContain(`GET '${h.key('lease:billing')}'`);
    // 1 and 2 delivered and retained for replay; no replay under way; no hedged dispatch.
    expect(billing.history.value).toBe(2);
    expect(billing.replay.value).toBeNull();
    expect(raw.hedges.length).toEqual({ value: 0, command: `redis-cli ZCARD '${h.key('hedge')}'` });
    const inspectTable = await cli('inspect');
    expect(inspectTable.code, inspectTable.stderr).toBe(0);
    for (const command of [
      `redis-cli XLEN '${h.key('in')}'`,
      `redis-cli XINFO GROUPS '${h.key('in')}'`,
      `redis-cli XPENDING '${h.key('in')}' workers`,
      `redis-cli XLEN '${h.key('res:billing')}'`,
      `redis-cli HLEN '${h.key('buf:billing')}'`,
      `redis-cli HGETALL '${h.key('paused')}'`,
      `redis-cli XLEN '${h.key('hist:billing')}'`,
      `redis-cli HGETALL '${h.key('replay:billing')}'`,
    ]) {
      expect(inspectTable.stdout).toContain(command);
    }
    expect(inspectTable.stdout).toMatch(/^group workers +\d+ consumers, 0 pending/m);
    expect(inspectTable.stdout).toMatch(/^billing: history +2 /m);
    expect(inspectTable.stdout).toMatch(/^billing: replay +none /m);

    const resumed = await json<{ paused: boolean; changed: boolean }>(
      cli('destination', 'resume', 'billing', '--json'),
    );
    expect(resumed).toMatchObject({ paused: false, changed: true });
    await waitFor(() => sinks.billing!.unique().length >= 5, 'billing to get 3, 4 and 5 after the resume', 15_000);
    expectDelivered(sinks.billing!, range(1, 5));
    expect((await cli('destination', 'resume', 'billing')).stdout).toMatch(/^billing was not paused/);
    expect((await json<StatusJson>(cli('status', '--json'))).destinations.billing).toMatchObject({
      delivered: 5,
      paused: false,
    });
    expectRefused(
      await cli('destination', 'pause', 'nowhere'),
      3,
      /^reseq: unknown destination "nowhere" \(known: billing, audit\)$/,
    );
  });

  it('refuses bad arguments, unknown destinations and missing dead letters, each with its own exit status', async () => {
    h = new Harness('cli refusals', inject('redisUrl'));
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    const cli = (...args: string[]): Promise<CliRun> => run(args, env);

    expectRefused(await cli(), 2, /^reseq: no command given/);
    expectRefused(await cli('stats'), 2, /^reseq: unknown command "stats"/);
    expectRefused(
      await cli('dlq', 'retry', 'billing'),
      2,
      /^reseq: missing arguments: dlq retry <destination> <sequence>/,
    );
    expectRefused(await cli('dlq', 'skip', 'billing', 'x'), 2, /^reseq: "x" is not a sequence/);
    expectRefused(await cli('status', '--yaml'), 2, /^reseq: Unknown option '--yaml'/);
    expectRefused(
      await cli('dlq', 'retry', 'nowhere', '1'),
      3,
      /^reseq: unknown destination "nowhere" \(known: billing\)$/,
    );
    expectRefused(await cli('dlq', 'list', 'nowhere'), 3, /unknown destination/);
    expectRefused(await cli('dlq', 'retry', 'billing', '1'), 4, /^reseq: billing has no dead letter at sequence 1$/);
    expectRefused(await cli('dlq', 'skip', 'billing', '7'), 4, /no dead letter/);
    expectRefused(
      await run(['status'], { ...env, RESEQ_CONFIG: join(dirname(config), 'missing.json') }),
      7,
      /^reseq: invalid configuration: RESEQ_CONFIG: cannot read/,
    );

    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: pnpm reseq <command>/);
    const empty = await cli('status', '--json');
    expect(JSON.parse(empty.stdout)).toEqual({
      destinations: {
        billing: expect.objectContaining({ assigned: 0, delivered: 0, deadLettered: 0, blocked: false }) as unknown,
      },
    });
  });

  it('exits non-zero at once when Redis is unreachable', async () => {
    h = new Harness('cli unreachable', inject('redisUrl'));
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const result = await run(['status', '--json'], {
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      RESEQ_CONFIG: config,
    });
    expectRefused(result, 6, /^reseq: cannot reach Redis at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(result.stdout).toBe('');
    expect(result.ms).toBeLessThan(3_000);
  });

  it('names the cluster nodes it could not reach, not REDIS_URL, on a Redis Cluster', async () => {
    h = new Harness('cli unreachable cluster', inject('redisUrl'));
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const [first, second] = [await freePort(), await freePort()];
    const result = await run(['status', '--json'], {
      REDIS_URL: 'redis://127.0.0.1:6399',
      REDIS_CLUSTER_NODES: `127.0.0.1:${first},127.0.0.1:${second}`,
      RESEQ_CONFIG: config,
    });
    expectRefused(
      result,
      6,
      new RegExp(`^reseq: cannot reach Redis at cluster nodes 127\\.0\\.0\\.1:${first},127\\.0\\.0\\.1:${second}: `),
    );
    expect(result.stdout).toBe('');
  });

  it('runs as `pnpm reseq` at the repository root, with nothing but the JSON on stdout', async () => {
    h = new Harness('cli pnpm', inject('redisUrl'));
    const config = await h.config(pipelineConfig({ billing: { url: 'http://127.0.0.1:9/in' } }));
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    const status = await run(['reseq', 'status', '--json'], env, ['pnpm']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual({
      destinations: { billing: expect.objectContaining({ blocked: false }) as unknown },
    });
    const refused = await run(['reseq', 'dlq', 'skip', 'billing', '1'], env, ['pnpm']);
    expect(refused.code).toBe(4);
    expect(refused.stderr.trim()).toBe('reseq: billing has no dead letter at sequence 1');
  });
});
