/**
 * `/metrics` of every app after a short run, scraped and parsed as Prometheus text: the names
 * issue 7 lists are there (accepted and rejected messages, backlog per stream, transforms,
 * reorder buffer, head-of-line wait, end-to-end latency, deliveries by outcome, leases and
 * takeovers, Redis round-trip time) and the counters a run must move have moved.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import {
  expectDelivered,
  freePort,
  get,
  Harness,
  ingestUrl,
  pipelineConfig,
  post,
  range,
  TEST_TRANSFORM,
} from './helpers.js';

/** One sample: name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition: the samples, and the metric names of its `# TYPE` lines. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(match, `a sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const [, key, value] of match![2]?.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[key!] = value!;
    samples.push({ name: match![1]!, labels, value: Number(match![3]) });
  }
  return { samples, types };
}

/** Sum of a metric's samples whose labels include `where`. */
function sum(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  const matching = samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
  expect(matching.length, `samples of ${name} ${JSON.stringify(where)}`).toBeGreaterThan(0);
  return matching.reduce((total, s) => total + s.value, 0);
}

async function scrape(port: number): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const { status, text } = await get(`http://127.0.0.1:${port}/metrics`);
  expect(status).toBe(200);
  return parseMetrics(text);
}

describe('metrics', () => {
  let h: Harness;
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs());
    await h.cleanup();
  });

  it('every app exposes its metrics, and a run moves them', async () => {
    h = new Harness('metrics', inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ billing: { url: sink.url } }));
    const [ingestPort, workerPort, senderPort] = [await freePort(), await freePort(), await freePort()];
    const ingest = await h.start('ingest', config, { METRICS_PORT: String(ingestPort) });
    await h.start('transform-worker', config, {
      METRICS_PORT: String(workerPort),
      TRANSFORM_MODULE: TEST_TRANSFORM,
      RESEQ_TEST_MAX_DELAY_MS: '20',
    });
    await h.start('resequencer-sender', config, { METRICS_PORT: String(senderPort) });
    for (const n of range(1, 5)) await h.send(ingest, { destination: 'billing', payload: { n } });
    const refused = await post(`${ingestUrl(ingest)}/v1/messages`, { destination: 'nowhere', payload: 1 });
    expect(refused.status).toBe(404);
    await waitFor(() => sink.unique().length >= 5, 'billing to get 1..5', 15_000);
    expectDelivered(sink, range(1, 5));

    const ing = await scrape(ingestPort);
    expect(sum(ing.samples, 'reseq_ingest_accepted_total', { destination: 'billing' })).toBe(5);
    expect(sum(ing.samples, 'reseq_ingest_rejected_total')).toBeGreaterThanOrEqual(1);
    expect(sum(ing.samples, 'reseq_redis_round_trip_seconds_count')).toBeGreaterThan(0);
    expect(ing.types.get('reseq_redis_round_trip_seconds')).toBe('histogram');

    const worker = await scrape(workerPort);
    expect(sum(worker.samples, 'reseq_transforms_total')).toBeGreaterThanOrEqual(5);
    expect(sum(worker.samples, 'reseq_transform_duration_seconds_count')).toBeGreaterThanOrEqual(5);
    expect(sum(worker.samples, 'reseq_input_stream_length')).toBeGreaterThanOrEqual(0);
    expect(sum(worker.samples, 'reseq_input_group_pending')).toBe(0);
    expect(sum(worker.samples, 'reseq_input_group_lag')).toBe(0);
    expect(sum(worker.samples, 'reseq_redis_round_trip_seconds_count')).toBeGreaterThan(0);

    await waitFor(
      async () =>
        sum((await scrape(senderPort)).samples, 'reseq_deliveries_total', {
          destination: 'billing',
          outcome: 'delivered',
        }) >= 5,
      'the sender to count 5 deliveries',
    );
    const sender = await scrape(senderPort);
    const billing = { destination: 'billing' };
    expect(sum(sender.samples, 'reseq_deliveries_total', { ...billing, outcome: 'delivered' })).toBe(5);
    expect(sum(sender.samples, 'reseq_end_to_end_seconds_count', billing)).toBe(5);
    expect(sender.types.get('reseq_end_to_end_seconds')).toBe('histogram');
    expect(sum(sender.samples, 'reseq_delivered_sequence', billing)).toBe(5);
    expect(sum(sender.samples, 'reseq_result_stream_length', billing)).toBeGreaterThanOrEqual(0);
    expect(sum(sender.samples, 'reseq_buffer_length', billing)).toBe(0);
    expect(sum(sender.samples, 'reseq_reorder_buffer_depth', billing)).toBe(0);
    expect(sum(sender.samples, 'reseq_gap_age_seconds', billing)).toBe(0);
    expect(sum(sender.samples, 'reseq_leases_held')).toBe(1);
    expect(sum(sender.samples, 'reseq_lease_acquisitions_total')).toBe(1);
    // The first holder of a destination's lease takes nothing over.
    expect(sum(sender.samples, 'reseq_lease_takeovers_total')).toBe(0);
    expect(sum(sender.samples, 'reseq_redis_round_trip_seconds_count')).toBeGreaterThan(0);
  });

  it('counts a lease takeover on the sender that takes over from a killed one', async () => {
    h = new Harness('metrics takeover', inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ billing: { url: sink.url } }, { sender: { leaseTtlMs: 1_500 } }));
    const first = await h.start('resequencer-sender', config);
    await waitFor(async () => (await h.redis.get(h.key('lease:billing'))) !== null, 'the first sender to hold billing');
    const port = await freePort();
    await h.start('resequencer-sender', config, { METRICS_PORT: String(port) });
    // Its ops server starts once its engine has started.
    await waitFor(
      async () => (await get(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200,
      'the standby',
    );
    expect(sum((await scrape(port)).samples, 'reseq_lease_takeovers_total')).toBe(0);
    await first.kill();
    await waitFor(
      async () => sum((await scrape(port)).samples, 'reseq_lease_takeovers_total') === 1,
      'the standby to count its takeover',
      10_000,
    );
    expect(sum((await scrape(port)).samples, 'reseq_leases_held')).toBe(1);
  });
});
