import { describe, expect, it } from 'vitest';
import {
  analyzeTrace,
  idealDeliveryTimes,
  percentile,
  scanDeliveries,
  steadyThroughput,
  summarize,
  type TracedMessage,
} from './trace.js';

/** A message of destination `d`, accepted at `at` as `sequence`, planned `ms`. */
const m = (destination: number, sequence: number, at: number, ms: number): TracedMessage => ({
  destination,
  plannedMs: ms,
  acceptedAt: at,
  sequence,
});

describe('percentile (nearest rank)', () => {
  it('picks the value at rank ceil(p/100 × n)', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBe(5);
    expect(percentile(sorted, 99)).toBe(10);
    expect(percentile(sorted, 10)).toBe(1);
    expect(percentile(sorted, 100)).toBe(10);
    expect(percentile([42], 99)).toBe(42);
    expect(percentile([], 50)).toBeNaN();
  });

  it('counts messages never delivered as infinitely late', () => {
    // 98 delivered at 10 ms and 2 never: p99 is the first missing one, p50 is still 10.
    const s = summarize(new Array<number>(98).fill(10), 2);
    expect(s).toEqual({ count: 100, p50: 10, p99: Infinity, max: Infinity });
    expect(summarize([3, 1, 2])).toEqual({ count: 3, p50: 2, p99: 3, max: 3 });
  });
});

describe('ideal ordered latency', () => {
  it('is the running maximum of accept + transform time, in the system order', () => {
    // The seed: one message every 250 ms, each 750 ms: every message can be out at accept + 750.
    const seed = [0, 250, 500, 750].map((at) => ({ acceptedAt: at, plannedMs: 750 }));
    expect(idealDeliveryTimes(seed)).toEqual([750, 1000, 1250, 1500]);
    // A slow message holds back the quicker ones after it, and no further.
    const slow = [
      { acceptedAt: 0, plannedMs: 100 },
      { acceptedAt: 10, plannedMs: 1000 },
      { acceptedAt: 20, plannedMs: 50 },
      { acceptedAt: 2000, plannedMs: 50 },
    ];
    expect(idealDeliveryTimes(slow)).toEqual([100, 1010, 1010, 2050]);
  });

  it('gives overhead = delivery - ideal, per destination, ordered by sequence not by index', () => {
    // Destination 0 accepted k=1 before k=0 (sequences 2 and 1 swapped against the index order).
    const messages = [m(0, 2, 100, 500), m(0, 1, 110, 800), m(1, 1, 120, 100)];
    // k=1 (sequence 1) ideal 910; k=0 (sequence 2): max(910, 600) = 910; k=2 alone: 220.
    const { analysis, perMessage } = analyzeTrace({
      messages,
      deliveryK: [2, 1, 0],
      deliveryAt: [230, 915, 920],
    });
    expect(Array.from(perMessage.idealAt)).toEqual([910, 910, 220]);
    expect(analysis.orderViolations).toBe(0);
    expect(analysis.overheadMs).toEqual({ count: 3, p50: 10, p99: 10, max: 10 });
    expect(analysis.latencyMs).toEqual({ count: 3, p50: 805, p99: 820, max: 820 });
  });
});

describe('order violations, duplicates and unknown receipts', () => {
  it('counts a message received after a higher sequence of its own destination', () => {
    const messages = [m(0, 1, 0, 0), m(0, 2, 1, 0), m(0, 3, 2, 0), m(1, 1, 3, 0)];
    // Destination 0 sees 2, 1, 3: sequence 1 after 2 is one violation. Destination 1 is apart.
    const scan = scanDeliveries({ messages, deliveryK: [1, 3, 0, 2], deliveryAt: [5, 6, 7, 8] });
    expect(scan.orderViolations).toBe(1);
    expect(scan.duplicates).toBe(0);
  });

  it('counts a repeat as a duplicate, not a violation, and an index never accepted as unknown', () => {
    const messages = [
      m(0, 1, 0, 0),
      m(0, 2, 1, 0),
      { destination: 0, plannedMs: 0, acceptedAt: undefined, sequence: undefined },
    ];
    // 1, 2, then 1 again (a redelivery after a reconnect), then k=2 that was never accepted, then k=7.
    const scan = scanDeliveries({ messages, deliveryK: [0, 1, 0, 2, 7], deliveryAt: [5, 6, 7, 8, 9] });
    expect(scan).toMatchObject({ orderViolations: 0, duplicates: 1, unknown: 2 });
    expect(Array.from(scan.deliveredAt)).toEqual([5, 6, NaN]);
  });

  it('finds every violation of an unordered run', () => {
    // 10 messages of one destination, received in reverse: every one after the first is late.
    const messages = Array.from({ length: 10 }, (_, k) => m(0, k + 1, k, 0));
    const reversed = Array.from({ length: 10 }, (_, i) => 9 - i);
    const scan = scanDeliveries({ messages, deliveryK: reversed, deliveryAt: reversed.map((_, i) => 100 + i) });
    expect(scan.orderViolations).toBe(9);
  });
});

describe('analyzeTrace', () => {
  it('reports undelivered messages and leaves the warm-up out of the statistics', () => {
    const messages = [m(0, 1, 0, 10), m(0, 2, 100, 10), m(0, 3, 200, 10), m(0, 4, 300, 10)];
    const { analysis } = analyzeTrace({
      messages,
      deliveryK: [1, 2, 0],
      deliveryAt: [115, 212, 1000],
      measureFrom: 50,
    });
    // k=0 (sequence 1, warm-up) arrived after sequence 3: the warm-up is still checked for order.
    expect(analysis).toMatchObject({ accepted: 4, measured: 3, delivered: 3, undelivered: 1, orderViolations: 1 });
    // Measured: k=1 latency 15, k=2 latency 12, k=3 never: Infinity.
    expect(analysis.latencyMs).toEqual({ count: 3, p50: 15, p99: Infinity, max: Infinity });
    expect(analysis.deliveredLatencyMs).toEqual({ count: 2, p50: 12, p99: 15, max: 15 });
    expect(analysis.firstAcceptAt).toBe(0);
    expect(analysis.lastDeliveryAt).toBe(1000);
  });

  it('measures throughput between the 10th and the 90th percentile receipt', () => {
    // 101 receipts 10 ms apart: 100 per second, whatever happens at the edges.
    const times = Array.from({ length: 101 }, (_, i) => i * 10);
    expect(steadyThroughput(times)).toBeCloseTo(100, 5);
    // A slow start and a slow drain do not change it.
    expect(steadyThroughput([-5000, ...times, 9000])).toBeCloseTo(100, 0);
    expect(steadyThroughput([5])).toBe(0);
  });
});
