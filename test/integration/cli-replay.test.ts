/**
 * `reseq replay` and the in-flight and lag-in-seconds figures of `reseq status`, as an operator
 * runs them (`node apps/cli/dist/main.js ...`) against the real apps: a replay delivers the
 * retained history again, in order, through the real sender and its HTTP adapter (same
 * Idempotency-Key), then new messages go on in order; a replay requested while no sender runs
 * waits for the next one; every refusal has its exit status and one-line reason.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { Delivery, HttpSink } from '../fixtures/http-sink.js';
import { Harness, pipelineConfig, range, sequences, TEST_TRANSFORM } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'apps', 'cli', 'dist', 'main.js');

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function run(args: readonly string[], env: Record<string, string>): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

function expectRefused(result: CliRun, code: number, reason: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(reason);
  expect(result.stdout).toBe('');
}

interface StatusEntry {
  assigned: number;
  delivered: number;
  lag: number;
  inFlight: number;
  lagSeconds: number | null;
  oldestUnsettledAt: number | null;
  buffered: number;
  pendingResults: number;
  replay: { from: number; to: number | null; next: number | null } | null;
}

/** What the receiver saw of a delivery that a replay must repeat exactly. */
const seen = (d: Delivery) => ({ key: d.idempotencyKey, id: d.messageId, sequence: d.sequence, body: d.rawBody });

describe('reseq replay', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  async function pipeline(
    name: string,
    sender: object = {},
  ): Promise<{ sink: HttpSink; config: string; ingest: AppProcess; cli: (...args: string[]) => Promise<CliRun> }> {
    h = new Harness(name, inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(
      pipelineConfig({ billing: { url: sink.url } }, { sender: { leaseTtlMs: 1_000, ...sender } }),
    );
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '20' });
    await h.start('resequencer-sender', config);
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    return { sink, config, ingest, cli: (...args) => run(args, env) };
  }

  async function status(cli: (...args: string[]) => Promise<CliRun>): Promise<StatusEntry> {
    const result = await cli('status', '--json');
    expect(result.code, result.stderr).toBe(0);
    return (JSON.parse(result.stdout) as { destinations: Record<string, StatusEntry> }).destinations.billing!;
  }

  it('delivers the retained history again, in order, with the same Idempotency-Keys, then carries on', async () => {
    const { sink, ingest, cli } = await pipeline('replay in order');
    // 4 is dropped by the transform: never delivered, so never replayed either.
    for (const n of range(1, 6))
      await h.send(ingest, { destination: 'billing', payload: n === 4 ? { n, drop: true } : { n } });
    await waitFor(async () => (await status(cli)).delivered === 6, 'billing to settle 1..6');
    expect(sequences(sink.received)).toEqual([1, 2, 3, 5, 6]);
    const originals = sink.received.map(seen);

    const replay = await cli('replay', 'billing', '--from', '3', '--json');
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({
      destination: 'billing',
      from: 3,
      to: 6,
      retained: { oldest: 1, newest: 6 },
      scheduled: true,
    });
    await waitFor(async () => (await status(cli)).replay === null, 'the replay to be done');
    expect(sequences(sink.received)).toEqual([1, 2, 3, 5, 6, 3, 5, 6]);
    // The same messages as the first time: same key, message id and transformed body.
    expect(sink.received.slice(5).map(seen)).toEqual(originals.slice(2));

    // New messages go on after the replay, in order.
    for (const n of [7, 8]) await h.send(ingest, { destination: 'billing', payload: { n } });
    await waitFor(() => sink.received.length >= 10, 'billing to get 7 and 8');
    expect(sequences(sink.received).slice(8)).toEqual([7, 8]);

    // Again, as a sentence: everything from 6 on, now including 7 and 8.
    const text = await cli('replay', 'billing', '--from', '6');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^scheduled a replay of billing from 6 to 8 \(retained: 1 to 8; requested /);
    await waitFor(() => sink.received.length >= 13, 'the second replay');
    await waitFor(async () => (await status(cli)).replay === null, 'the second replay to be done');
    expect(sequences(sink.received)).toEqual([1, 2, 3, 5, 6, 3, 5, 6, 7, 8, 6, 7, 8]);
    // Each message reached the receiver as itself every time: one body per Idempotency-Key.
    const bodies = new Map<string, Set<string>>();
    for (const d of sink.received)
      bodies.set(d.idempotencyKey, (bodies.get(d.idempotencyKey) ?? new Set()).add(d.rawBody));
    expect([...bodies.values()].every((set) => set.size === 1)).toBe(true);
  });

  it('waits for a sender when none runs, refuses a second request and what history no longer holds', async () => {
    // A history of about 10: 130 deliveries trim it to the newest few dozen.
    const { sink, config, ingest, cli } = await pipeline('replay refusals', { historyLength: 10 });
    for (const n of range(1, 130)) await h.send(ingest, { destination: 'billing', payload: { n } });
    await waitFor(async () => (await status(cli)).delivered === 130, 'billing to settle 1..130');
    const [first] = await h.redis.xrange(h.key('hist:billing'), '-', '+', 'COUNT', 1);
    const oldest = Number(first?.[0].split('-')[0]);
    expect(oldest).toBeGreaterThan(1);
    expect(oldest).toBeLessThanOrEqual(121);

    expectRefused(
      await cli('replay', 'billing', '--from', '1'),
      8,
      new RegExp(
        `^reseq: billing retains sequences ${oldest} to 130 only: 1 is no longer retained; the oldest you can replay from is ${oldest}$`,
      ),
    );
    expectRefused(
      await cli('replay', 'billing', '--from', '131'),
      8,
      /^reseq: billing has delivered up to 130: 131 was not delivered yet, so there is nothing to replay from it$/,
    );
    expect((await cli('destination', 'pause', 'billing')).code).toBe(0);
    expectRefused(
      await cli('replay', 'billing', '--from', '129'),
      8,
      /^reseq: billing is paused \(since .*\): resume it first/,
    );
    expect((await cli('destination', 'resume', 'billing')).code).toBe(0);

    // No sender: the request waits in Redis; a second one is refused meanwhile.
    await h.apps.find((app) => app.name === 'resequencer-sender')!.stop();
    const scheduled = await cli('replay', 'billing', '--from', '128', '--json');
    expect(scheduled.code, scheduled.stderr).toBe(0);
    expect(JSON.parse(scheduled.stdout)).toMatchObject({ from: 128, to: 130, retained: { oldest, newest: 130 } });
    expectRefused(
      await cli('replay', 'billing', '--from', '129'),
      8,
      /^reseq: billing has a replay from 128 to 130 pending \(not started yet\)/,
    );
    expect((await status(cli)).replay).toMatchObject({ from: 128, to: null, next: null });
    expect((await cli('status')).stdout).toMatch(/^replay pending: billing from 128 \(requested /m);
    expect(sink.received).toHaveLength(130);

    await h.start('resequencer-sender', config);
    await waitFor(async () => (await status(cli)).replay === null, 'the new sender to run the replay');
    expect(sequences(sink.received)).toEqual([...range(1, 130), 128, 129, 130]);

    // Bad arguments, unknown destinations and destinations where a replay makes no sense.
    expectRefused(
      await cli('replay', 'billing'),
      2,
      /^reseq: missing --from <sequence>: replay <destination> --from <sequence>/,
    );
    expectRefused(await cli('replay', 'billing', '--from', 'x'), 2, /^reseq: "x" is not a sequence/);
    expectRefused(await cli('status', '--from', '3'), 2, /^reseq: --from applies only to replay/);
    expectRefused(
      await cli('replay', 'nowhere', '--from', '1'),
      3,
      /^reseq: unknown destination "nowhere" \(known: billing\)$/,
    );
    const others = await h.config({
      destinations: {
        billing: { type: 'http', url: sink.url },
        ledger: { type: 'tcp', host: '127.0.0.1', port: 9 },
        store: { type: 'postgres', url: 'postgres://127.0.0.1:9/x', table: 'events' },
      },
    });
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: others };
    expectRefused(
      await run(['replay', 'ledger', '--from', '1'], env),
      8,
      /^reseq: ledger cannot be replayed: a tcp receiver is promised never a lower sequence after a higher one/,
    );
    expectRefused(
      await run(['replay', 'store', '--from', '1'], env),
      8,
      /^reseq: store cannot be replayed: a postgres destination holds each row exactly once/,
    );
  });
});

describe('reseq status: in flight and lag in seconds', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  it('counts messages waiting for a worker as in flight, and ages the oldest unsettled one', async () => {
    h = new Harness('status lag', inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ billing: { url: sink.url } }));
    const env = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
    const cli = (...args: string[]): Promise<CliRun> => run(args, env);
    const billing = async (): Promise<{ entry: StatusEntry; before: number; after: number }> => {
      const before = Date.now();
      const result = await cli('status', '--json');
      const after = Date.now();
      expect(result.code, result.stderr).toBe(0);
      const entry = (JSON.parse(result.stdout) as { destinations: Record<string, StatusEntry> }).destinations.billing!;
      return { entry, before, after };
    };

    // Paused before its sender starts, so nothing is delivered while the figures are looked at.
    const ingest = await h.start('ingest', config);
    expect((await cli('destination', 'pause', 'billing')).code).toBe(0);
    await h.start('resequencer-sender', config);
    for (const n of [1, 2, 3]) await h.send(ingest, { destination: 'billing', payload: { n } });
    const [[, fields] = ['', []]] = await h.redis.xrange(h.key('in'), '-', '+', 'COUNT', 1);
    const acceptedAt = Number(fields[fields.indexOf('t') + 1]);

    // No worker yet: all three wait in the input stream, in flight.
    const waiting = await billing();
    expect(waiting.entry).toMatchObject({
      assigned: 3,
      delivered: 0,
      lag: 3,
      inFlight: 3,
      buffered: 0,
      pendingResults: 0,
      oldestUnsettledAt: acceptedAt,
    });
    expect(waiting.entry.lagSeconds).toBeGreaterThanOrEqual((waiting.before - acceptedAt) / 1000);
    expect(waiting.entry.lagSeconds).toBeLessThanOrEqual((waiting.after - acceptedAt) / 1000);
    expect((await cli('status')).stdout).toMatch(/^billing +3 +0 +3 +\d+\.\d +3 +0 +no +yes /m);

    // Transformed and held back by the pause: no longer in flight, still just as old.
    await h.start('transform-worker', config);
    await waitFor(async () => {
      const { entry } = await billing();
      return entry.buffered + entry.pendingResults === 3;
    }, 'the three results to wait behind the pause');
    const held = await billing();
    expect(held.entry).toMatchObject({ lag: 3, inFlight: 0, oldestUnsettledAt: acceptedAt });
    expect(held.entry.lagSeconds).toBeGreaterThanOrEqual((held.before - acceptedAt) / 1000);

    // Resumed: delivered, nothing unsettled, no lag.
    expect((await cli('destination', 'resume', 'billing')).code).toBe(0);
    await waitFor(async () => (await billing()).entry.delivered === 3, 'billing to deliver 1..3');
    expect((await billing()).entry).toMatchObject({ lag: 0, inFlight: 0, lagSeconds: 0, oldestUnsettledAt: null });
    expect(sequences(sink.received)).toEqual([1, 2, 3]);
  });
});
