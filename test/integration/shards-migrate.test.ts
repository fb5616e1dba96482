/**
 * `reseq shards migrate --to <count>` with the real apps on one Redis: a single-shard pipeline
 * that delivered its messages is moved to three shards with every app stopped, and goes on
 * there: each destination's sequences continue where they stopped (no gap, no second 1), a
 * client's retry of a message from before the move is answered with its old sequences and
 * delivered nothing twice, and the old layout's keys are gone. Refused while a sender runs.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { Shards } from '@reseq/store';
import { afterEach, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { deleteKeys } from '../fixtures/redis.js';
import { expectDelivered, Harness, ingestUrl, pipelineConfig, post, range, TEST_TRANSFORM } from './helpers.js';

const CLI = join(resolve(import.meta.dirname, '../..'), 'apps', 'cli', 'dist', 'main.js');
const DESTINATIONS = ['billing', 'ledger', 'audit', 'crm', 'search'];

async function runCli(args: readonly string[], env: Record<string, string>) {
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

let h: Harness | undefined;
afterEach(async (context) => {
  if (context.task.result?.state === 'fail') console.error(h?.dumpLogs(40));
  if (h) await deleteKeys(h.redis, `{${h.prefix}`).catch(() => undefined);
  await h?.cleanup();
  h = undefined;
});

it('moves a drained single-shard pipeline to three shards, where its sequences and client ids go on', async () => {
  h = new Harness('shards-migrate', inject('redisUrl'));
  const sinks: Record<string, HttpSink> = Object.fromEntries(
    await Promise.all(DESTINATIONS.map(async (d) => [d, await h!.sink()] as const)),
  );
  const config = await h.config(
    pipelineConfig(Object.fromEntries(DESTINATIONS.map((d) => [d, { url: sinks[d]!.url }]))),
  );
  const cliEnv = { REDIS_URL: h.redisUrl, RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: config };
  const targets = (i: number): string[] => [DESTINATIONS[i % 5]!, ...(i % 2 === 0 ? [DESTINATIONS[(i + 2) % 5]!] : [])];
  const assigned = new Map(DESTINATIONS.map((d) => [d, 0]));
  const send = async (url: string, i: number, id = `m-${i}-${randomUUID().slice(0, 8)}`) => {
    const answer = await post(url, { id, destinations: targets(i), payload: { i } });
    expect(answer.status, answer.text).toBe(202);
    return { id, sequences: answer.body.sequences as Record<string, number> };
  };
  const deliveredAll = async () => {
    for (const d of DESTINATIONS) {
      await waitFor(() => sinks[d]!.unique().length >= assigned.get(d)!, `${d} delivered`, 60_000);
    }
  };

  // One shard (the default): 40 messages delivered.
  let apps = [
    await h.start('ingest', config),
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '10' }),
    await h.start('resequencer-sender', config),
  ];
  let url = `${ingestUrl(apps[0]!)}/v1/messages`;
  const before: { id: string; sequences: Record<string, number> }[] = [];
  for (let i = 0; i < 40; i++) {
    before.push(await send(url, i));
    for (const d of targets(i)) assigned.set(d, assigned.get(d)! + 1);
  }
  await deliveredAll();

  // Refused while a sender runs: nothing moves.
  const refused = await runCli(['shards', 'migrate', '--to', '3'], cliEnv);
  expect(refused.code).toBe(9);
  expect(refused.stderr).toMatch(/^reseq: cannot change the shard count now: .*resequencer-sender/);
  expect(await h.redis.hget(h.key('seq'), 'billing')).toBe(String(assigned.get('billing')));

  for (const app of apps) expect(await app.stop()).toBe(0);
  const moved = await runCli(['shards', 'migrate', '--to', '3', '--json'], cliEnv);
  expect(moved.code, moved.stderr).toBe(0);
  const report = JSON.parse(moved.stdout) as { from: number; to: number; clientIds: number };
  expect(report).toMatchObject({ from: 1, to: 3, clientIds: 40 });
  // The old layout is gone; the CLI with the old count is refused now, with the new one it reads.
  expect(await h.redis.exists(h.key('seq'), h.key('pos'), h.key('in'), h.key(`id:${before[0]!.id}`))).toBe(0);
  expect((await runCli(['status'], cliEnv)).code).toBe(7);
  const sharded = { ...cliEnv, RESEQ_SHARDS: '3' };
  const layout = await runCli(['shards', '--json'], sharded);
  expect(layout.code, layout.stderr).toBe(0);
  const shards = new Shards(h.prefix, 3);
  expect((JSON.parse(layout.stdout) as { shards: { tag: string }[] }).shards.map((s) => s.tag)).toEqual(
    shards.all.map((k) => k.tag),
  );

  // Three shards: the same pipeline goes on.
  apps = [
    await h.start('ingest', config, { RESEQ_SHARDS: '3' }),
    await h.start('transform-worker', config, {
      RESEQ_SHARDS: '3',
      TRANSFORM_MODULE: TEST_TRANSFORM,
      RESEQ_TEST_MAX_DELAY_MS: '10',
    }),
    await h.start('resequencer-sender', config, { RESEQ_SHARDS: '3' }),
  ];
  url = `${ingestUrl(apps[0]!)}/v1/messages`;
  // A client's retry of messages from before the move: the same sequences, nothing written.
  for (const i of [0, 7, 38]) expect(await send(url, i, before[i]!.id)).toEqual(before[i]);
  for (let i = 40; i < 70; i++) {
    const { sequences } = await send(url, i);
    for (const d of targets(i)) {
      assigned.set(d, assigned.get(d)! + 1);
      expect(sequences[d], d).toBe(assigned.get(d));
    }
  }
  await deliveredAll();
  await new Promise((r) => setTimeout(r, 300)); // a stray redelivery of a retried id would show now
  for (const d of DESTINATIONS) {
    expectDelivered(sinks[d]!, range(1, assigned.get(d)!));
    expect(await h.redis.hget(shards.forDestination(d).delivered, d), d).toBe(String(assigned.get(d)));
  }
  const status = await runCli(['status', '--json'], sharded);
  expect(status.code, status.stderr).toBe(0);
  const states = (JSON.parse(status.stdout) as { destinations: Record<string, { assigned: number }> }).destinations;
  for (const d of DESTINATIONS) expect(states[d]!.assigned, d).toBe(assigned.get(d));
});
