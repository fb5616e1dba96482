/**
 * A whole pipeline on a Redis Cluster, as cluster.test.ts and cluster-reshard.test.ts run it: one
 * shard, ingest, two transform workers and a sender, two HTTP destinations (`billing` takes every
 * message, `ledger` every third); clients that retry with their ids as the contract says; and the
 * check that every message ingest answered 202 for reached each destination once, in order. The
 * clients and the check take other routings too (shards.test.ts spreads messages over its shards).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { expectDelivered, type Harness, ingestUrl, pipelineConfig, post, range, TEST_TRANSFORM } from './helpers.js';

/** Concurrent ingest clients of {@link sendAll}. */
const CLIENTS = 4;

/** Which destinations the messages of a run go to. */
export interface Routing {
  destinations: readonly string[];
  /** The destinations of message i, in the order the request names them. */
  targetsOf: (i: number) => string[];
}

/** The cluster tests' routing: every message goes to billing; every third also to ledger. */
export const BILLING_AND_LEDGER: Routing = {
  destinations: ['billing', 'ledger'],
  targetsOf: (i) => (i % 3 === 0 ? ['billing', 'ledger'] : ['billing']),
};

/** What ingest acknowledged, per destination: sequence -> message id; and the retryable answers met. */
export interface Sent {
  acknowledged: Map<string, Map<number, string>>;
  retried: Map<string, number>;
}

/**
 * Sends `messages` messages from CLIENTS concurrent clients, each retried with its id after a lost
 * connection, a 503 or a 429 (as the contract says), and calls `at(i)` before message i.
 */
export async function sendAll(
  url: string,
  messages: number,
  at: (i: number, sent: Sent) => void = () => undefined,
  routing: Routing = BILLING_AND_LEDGER,
): Promise<Sent> {
  const sent: Sent = {
    acknowledged: new Map(routing.destinations.map((d) => [d, new Map<number, string>()])),
    retried: new Map(),
  };
  let next = 0;
  const client = async (): Promise<void> => {
    for (let i = next++; i < messages; i = next++) {
      at(i, sent);
      const id = `m-${i}-${randomUUID().slice(0, 8)}`;
      const targets = routing.targetsOf(i);
      for (;;) {
        const answer = await post(url, { id, destinations: targets, payload: { i } }).catch(() => undefined);
        if (answer?.status === 202) {
          const sequences = answer.body.sequences as Record<string, number>;
          expect(Object.keys(sequences)).toEqual(targets);
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

/**
 * Contiguous sequences per destination, all `messages` delivered once, in order, each with its
 * own message.
 */
export async function expectAllDelivered(
  sent: Sent,
  sinks: Record<string, HttpSink>,
  messages: number,
  routing: Routing = BILLING_AND_LEDGER,
): Promise<void> {
  const expected = new Map(routing.destinations.map((d) => [d, 0]));
  for (let i = 0; i < messages; i++) for (const d of routing.targetsOf(i)) expected.set(d, expected.get(d)! + 1);
  for (const [destination, acknowledged] of sent.acknowledged) {
    expect(acknowledged.size, destination).toBe(expected.get(destination));
    expect([...acknowledged.keys()].sort((a, b) => a - b)).toEqual(range(1, acknowledged.size));
    const sink = sinks[destination]!;
    await waitFor(() => sink.unique().length >= acknowledged.size, `every message delivered to ${destination}`, 90_000);
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

/**
 * Starts ingest, two workers and a sender of `h`'s pipeline with `env` (REDIS_CLUSTER_NODES and
 * the like), delivering to `sinks.billing` and `sinks.ledger`; returns ingest's message URL and
 * the config file.
 */
export async function startPipeline(
  h: Harness,
  env: Record<string, string>,
  sinks: Record<string, HttpSink>,
): Promise<{ url: string; config: string }> {
  const config = await h.config(
    pipelineConfig(
      { billing: { url: sinks.billing!.url }, ledger: { url: sinks.ledger!.url } },
      { sender: { leaseTtlMs: 3000 }, worker: { claimIdleMs: 2000 } },
    ),
  );
  const ingest = await h.start('ingest', config, env);
  for (const n of [1, 2]) {
    await h.start('transform-worker', config, {
      ...env,
      RESEQ_CONSUMER_NAME: `cluster-worker-${n}`,
      TRANSFORM_MODULE: TEST_TRANSFORM,
      RESEQ_TEST_MAX_DELAY_MS: '20',
    });
  }
  await h.start('resequencer-sender', config, env);
  return { url: `${ingestUrl(ingest)}/v1/messages`, config };
}
