/**
 * Delivery over TCP with the real apps and the reference receiver: a window of lines in flight,
 * in order and complete; a receiver that drops the connection or stops acknowledging (the
 * sender reconnects with backoff from the first unacknowledged sequence); a SIGKILLed sender
 * (another continues); and an HTTP and a TCP destination that do not hold each other up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startTcpReceiver, type ReceivedLine, type TcpReceiver } from '@reseq/delivery';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import { expectDelivered, Harness, pipelineConfig, range, TEST_TRANSFORM, type TestDestination } from './helpers.js';

/** One TCP destination of a test pipeline. */
interface TcpTestDestination {
  receiver: TcpReceiver;
  window?: number;
  timeoutMs?: number;
}

/** {@link pipelineConfig} with TCP destinations added. */
function tcpPipelineConfig(
  tcp: Record<string, TcpTestDestination>,
  http: Record<string, TestDestination> = {},
  overrides: Parameters<typeof pipelineConfig>[1] = {},
): Record<string, unknown> {
  const config = pipelineConfig(http, overrides);
  const destinations = config.destinations as Record<string, unknown>;
  for (const [name, d] of Object.entries(tcp)) {
    destinations[name] = {
      type: 'tcp',
      host: '127.0.0.1',
      port: d.receiver.port,
      window: d.window ?? 32,
      timeoutMs: d.timeoutMs ?? 2_000,
      retry: { baseMs: 20, maxMs: 200 },
    };
  }
  return config;
}

/**
 * What the contract promises on the wire: on each connection, sequences only go up (each line
 * the next one: the sender never skips a sequence it has), and a new connection starts at or
 * below the first sequence not yet taken.
 */
function expectNeverBackwards(lines: readonly ReceivedLine[]): void {
  const lastOn = new Map<number, number>();
  let highestTaken = 0;
  for (const line of lines) {
    const before = lastOn.get(line.connection);
    if (before === undefined)
      expect(line.sequence, `first on connection ${line.connection}`).toBeLessThanOrEqual(highestTaken + 1);
    else expect(line.sequence, `after ${before} on connection ${line.connection}`).toBe(before + 1);
    lastOn.set(line.connection, line.sequence);
    highestTaken = Math.max(highestTaken, line.sequence);
  }
}

describe('delivery over TCP', () => {
  let h: Harness;
  const receivers: TcpReceiver[] = [];
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs(30));
    await h.cleanup();
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });

  async function receiver(options: Parameters<typeof startTcpReceiver>[0] = {}): Promise<TcpReceiver> {
    const r = await startTcpReceiver(options);
    receivers.push(r);
    return r;
  }

  /** Ingest and a worker on a fresh pipeline. */
  async function pipeline(name: string, config: Record<string, unknown>) {
    h = new Harness(name, inject('redisUrl'));
    const path = await h.config(config);
    const ingest = await h.start('ingest', path);
    await h.start('transform-worker', path, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '5' });
    return { path, ingest };
  }

  /** Sends `count` messages to `destinations`, `parallel` at a time; resolves with each id's sequence. */
  async function sendMany(
    ingest: AppProcess,
    destinations: string[],
    count: number,
    parallel = 16,
    from = 1,
  ): Promise<Map<number, string>> {
    const idOf = new Map<number, string>();
    for (let start = from; start < from + count; start += parallel) {
      const batch = range(start, Math.min(from + count - 1, start + parallel - 1));
      const replies = await Promise.all(
        batch.map((n) => h.send(ingest, { destinations, payload: { n }, id: `m${n}` })),
      );
      replies.forEach((reply) => idOf.set(reply.sequences[destinations[0]!]!, reply.id));
    }
    return idOf;
  }

  function expectComplete(r: TcpReceiver, destination: string, idOf: Map<number, string>): void {
    const taken = r.taken(destination);
    expect(taken.map((l) => l.sequence)).toEqual(range(1, idOf.size));
    for (const line of taken) {
      expect(line.id).toBe(idOf.get(line.sequence));
      expect(line.payload).toMatchObject({ transformed: true, sequence: line.sequence });
    }
    expectNeverBackwards(r.received.filter((l) => l.destination === destination));
  }

  it('1,200 messages arrive in order and complete, with many lines in flight before an ack', async () => {
    const r = await receiver({ ackBatch: 16, ackDelayMs: 20, cumulativeAcks: true });
    const { path, ingest } = await pipeline('tcp bulk', tcpPipelineConfig({ ledger: { receiver: r, window: 64 } }));
    await h.start('resequencer-sender', path);
    const idOf = await sendMany(ingest, ['ledger'], 1_200);
    await waitFor(() => r.taken('ledger').length >= 1_200, 'every message at the receiver', 60_000);
    await sleep(200);
    expectComplete(r, 'ledger', idOf);
    expect(Math.max(...r.received.map((l) => l.waitingForAck))).toBeGreaterThanOrEqual(8);
    expect(r.connections).toBe(1);
  });

  it('a dropped connection and a receiver that stops acknowledging: the sender reconnects with backoff from the first unacknowledged sequence', async () => {
    let dropped = false;
    let held = false;
    const r = await receiver({
      ackBatch: 4,
      ackDelayMs: 10,
      onLine: (line) => {
        if (!dropped && line.sequence === 150) {
          dropped = true;
          r.dropConnections();
        }
        if (!held && line.sequence === 400) {
          held = true;
          r.holdAcks = true;
          setTimeout(() => (r.holdAcks = false), 1_500);
        }
      },
    });
    const { path, ingest } = await pipeline(
      'tcp reconnect',
      tcpPipelineConfig({ ledger: { receiver: r, window: 16, timeoutMs: 400 } }),
    );
    const sender = await h.start('resequencer-sender', path);
    const idOf = await sendMany(ingest, ['ledger'], 600);
    await waitFor(() => r.taken('ledger').length >= 600, 'every message at the receiver', 60_000);
    await sleep(200);
    expectComplete(r, 'ledger', idOf);
    // The drop, then at least one ack timeout while acks were held.
    expect(r.connections).toBeGreaterThanOrEqual(3);
    expect(r.received.some((l) => !l.taken)).toBe(true);
    const failures = sender.logs.filter(
      (l) => l.msg === 'delivery failed; retrying from the first unacknowledged sequence',
    );
    expect(failures.some((l) => String(l.error).startsWith('no ack within'))).toBe(true);
  });

  it('SIGKILL of the active sender mid-stream: another continues; the receiver sees a sequence again at most, never out of order', async () => {
    const r = await receiver({ ackBatch: 8, ackDelayMs: 10 });
    const { path, ingest } = await pipeline(
      'tcp sigkill',
      tcpPipelineConfig({ ledger: { receiver: r, window: 32 } }, {}, { sender: { leaseTtlMs: 1_000 } }),
    );
    const first = await h.start('resequencer-sender', path);
    const second = await h.start('resequencer-sender', path);
    const sending = sendMany(ingest, ['ledger'], 800, 4);
    await waitFor(() => r.taken('ledger').length >= 200, 'deliveries to start', 30_000);
    const holder = await h.redis.get(h.key('lease:ledger'));
    const active = holder?.includes(`-${first.child.pid}-`) ? first : second;
    await active.kill();
    expect(r.taken('ledger').length, 'killed mid-stream').toBeLessThan(800);
    const idOf = await sending;
    await waitFor(() => r.taken('ledger').length >= 800, 'every message at the receiver', 60_000);
    await sleep(200);
    expectComplete(r, 'ledger', idOf);
    expect(r.connections).toBeGreaterThanOrEqual(2);
  });

  it('an HTTP and a TCP destination side by side do not hold each other up', async () => {
    const r = await receiver();
    const h0 = new Harness('tcp side by side sink', inject('redisUrl'));
    const sink = await h0.sink();
    const { path, ingest } = await pipeline(
      'tcp side by side',
      tcpPipelineConfig({ ledger: { receiver: r, window: 8, timeoutMs: 300 } }, { web: { url: sink.url } }),
    );
    try {
      await h.start('resequencer-sender', path);
      // The TCP receiver stops acknowledging: HTTP deliveries go on.
      r.holdAcks = true;
      const first = await sendMany(ingest, ['web', 'ledger'], 100);
      await waitFor(() => sink.unique().length >= 100, 'every message at the HTTP sink', 30_000);
      expect(r.taken('ledger').length).toBeLessThanOrEqual(8);
      r.holdAcks = false;
      await waitFor(() => r.taken('ledger').length >= 100, 'TCP to catch up', 30_000);

      // The HTTP sink fails: TCP deliveries go on.
      sink.respond = () => 503;
      await sendMany(ingest, ['web', 'ledger'], 100, 16, 101);
      await waitFor(() => r.taken('ledger').length >= 200, 'every message at the TCP receiver', 30_000);
      expect(sink.unique().length).toBe(100);
      sink.respond = () => 200;
      await waitFor(() => sink.unique().length >= 200, 'HTTP to catch up', 30_000);
      await sleep(200);
      expectDelivered(sink, range(1, 200));
      expect(r.taken('ledger').map((l) => l.sequence)).toEqual(range(1, 200));
      expect(r.taken('ledger')[0]!.id).toBe(first.get(1));
      expectNeverBackwards(r.received);
    } finally {
      await h0.cleanup();
    }
  });
});
