/**
 * A smoke test of the harness without Redis or child processes: the producer drives the
 * in-memory limit (the baselines' front and reseq's delivery adapters, in this process) into
 * the sinks, over HTTP and over TCP, and the trace must come out complete and in order.
 */
import { request } from 'node:http';
import { parseConfig } from '@reseq/config';
import { afterEach, describe, expect, it } from 'vitest';
import { startFront, type Front } from '../baselines/front-server.js';
import { createLanes } from '../baselines/limit.js';
import { planMessage } from './plan.js';
import { runProducer } from './producer.js';
import { Recorder } from './recorder.js';
import { messageIndexOf, startHttpSink, startTcpSink, type Sink } from './sinks.js';
import { analyzeTrace } from './trace.js';

const names = ['d0', 'd1', 'd2'];
let sink: Sink | undefined;
let front: Front | undefined;

afterEach(async () => {
  await front?.close();
  await sink?.close();
  front = undefined;
  sink = undefined;
});

describe.each(['http', 'tcp'] as const)('producer -> limit -> %s sink', (protocol) => {
  it('records every message once, in each destination order', async () => {
    const recorder = new Recorder();
    sink = protocol === 'http' ? await startHttpSink(recorder) : await startTcpSink(recorder, names);
    const destinations = Object.fromEntries(names.map((name, i) => [name, sink!.destination(i)]));
    const lanes = createLanes(parseConfig({}, { destinations }));
    front = await startFront({
      destinations: names,
      enqueue: (message) => {
        lanes.get(message.destination)!.push(message);
        return Promise.resolve();
      },
      httpPort: 0,
      tcpPort: 0,
    });
    const stats = await runProducer({
      protocol,
      httpPort: front.httpPort,
      tcpPort: front.tcpPort,
      destinations: names,
      plan: (k) => planMessage(k, { kind: 'noop' }, names.length, 1),
      load: { kind: 'closed', outstanding: 20 },
      durationMs: 200,
      connections: 4,
      recorder,
    });
    await Promise.all([...lanes.values()].map((lane) => lane.drained()));
    await Promise.all([...lanes.values()].map((lane) => lane.close()));

    const { analysis } = analyzeTrace({
      messages: recorder.messages,
      deliveryK: recorder.deliveryK,
      deliveryAt: recorder.deliveryAt,
    });
    // At least the first window: the producer sends 20 at once and waits for every answer.
    expect(analysis.accepted).toBeGreaterThanOrEqual(20);
    expect(analysis).toMatchObject({
      delivered: analysis.accepted,
      undelivered: 0,
      duplicates: 0,
      unknown: 0,
      orderViolations: 0,
    });
    expect(recorder.rejectedCount).toBe(0);
    expect(recorder.misrouted).toBe(0);
    expect(recorder.unreadable).toBe(0);
    expect(stats.requests).toBe(analysis.accepted);
    // Each destination's sequences are 1..n in the order the front accepted them.
    for (const [d] of names.entries()) {
      const sequences = recorder.messages.filter((m) => m.destination === d).map((m) => m.sequence!);
      expect([...sequences].sort((a, b) => a - b)).toEqual(sequences.map((_, i) => i + 1));
    }
  });
});

describe('HTTP sink', () => {
  it('records each element of a batched body, and counts an unreadable one', async () => {
    const recorder = new Recorder();
    recorder.sent(0, 1, 0);
    recorder.sent(1, 1, 0);
    recorder.sent(2, 0, 0);
    sink = await startHttpSink(recorder);
    const post = (url: string, body: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(body);
      });
    const { url } = sink.destination(1) as { url: string };
    const batch = [
      { sequence: 1, id: 'b-0', idempotencyKey: 'd1:1:b-0', payload: { k: 0, ms: 0 } },
      { sequence: 2, id: 'b-1', idempotencyKey: 'd1:2:b-1', payload: { k: 1, ms: 0 } },
    ];
    expect(await post(url, JSON.stringify(batch))).toBe(200);
    expect(await post(url, JSON.stringify({ k: 2, ms: 0 }))).toBe(200);
    expect(await post(url, 'not json')).toBe(400);
    expect(recorder.deliveryK).toEqual([0, 1, 2]);
    // k=2 belongs to destination 0 but arrived at destination 1.
    expect(recorder.misrouted).toBe(1);
    expect(recorder.unreadable).toBe(1);
  });

  it('finds the message index in a payload or a batch element', () => {
    expect(messageIndexOf({ k: 7, ms: 0 })).toBe(7);
    expect(messageIndexOf({ sequence: 1, payload: { k: 8 } })).toBe(8);
    expect(messageIndexOf('x')).toBeUndefined();
    expect(messageIndexOf({ payload: 3 })).toBeUndefined();
  });
});
