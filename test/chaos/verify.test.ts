/**
 * The chaos run's rules for a destination, on hand-made wires: what counts as lost, reordered,
 * a stale repeat, a harmless redelivery, a conflict and a wrong payload.
 */
import { describe, expect, it } from 'vitest';
import { verdictFailed, verifyDestination, type WireDelivery } from './verify.js';

const D = 'dest-1';
const id = (index: number): string => `m-${String(index)}`;

/** Sequences 1..n accepted for messages 10, 11, ... */
function accepted(n: number): Map<number, number> {
  return new Map(Array.from({ length: n }, (_, k) => [k + 1, 10 + k]));
}

function wire(...sequences: number[]): WireDelivery[] {
  return sequences.map((sequence) => delivery(sequence));
}

function delivery(sequence: number, index = 9 + sequence, key = `${D}:${String(sequence)}:${id(index)}`): WireDelivery {
  return {
    sequence,
    messageId: id(index),
    idempotencyKey: key,
    body: { i: index, transformed: true, destination: D, sequence },
    receivedAt: 0,
  };
}

function verify(n: number, deliveries: WireDelivery[]) {
  return verifyDestination({
    destination: D,
    accepted: accepted(n),
    acceptedAt: new Map(),
    messageId: id,
    wire: deliveries,
  });
}

describe('verifyDestination', () => {
  it('passes an in-order wire, counting an immediate repeat as a redelivery', () => {
    const v = verify(4, wire(1, 2, 2, 3, 4, 4));
    expect(v).toMatchObject({ delivered: 4, redelivered: 2, lost: [], reordered: 0, staleRepeats: 0 });
    expect(verdictFailed(v)).toBe(false);
  });

  it('reports a sequence that never arrived as lost', () => {
    const v = verify(4, wire(1, 2, 4));
    expect(v.lost).toEqual([3]);
    expect(verdictFailed(v)).toBe(true);
  });

  it('reports a first arrival after a higher sequence as reordered', () => {
    expect(verify(3, wire(1, 3, 2))).toMatchObject({ reordered: 1, lost: [] });
  });

  it('reports a repeat of an older message after a higher one as a stale repeat', () => {
    const v = verify(3, wire(1, 2, 3, 2));
    expect(v).toMatchObject({ staleRepeats: 1, reordered: 0, redelivered: 1 });
    expect(verdictFailed(v)).toBe(true);
  });

  it('reports one sequence under two keys, another message than ingest answered, and a wrong payload', () => {
    const wrong = { ...delivery(3), body: { i: 12, transformed: false } };
    const v = verify(3, [delivery(1), delivery(1, 10, 'other-key'), delivery(2, 99), wrong]);
    expect(v).toMatchObject({ conflictingKeys: 1, unexpected: 1, wrongPayload: 1 });
  });

  it('reports gaps in what ingest answered', () => {
    const answered = new Map([
      [1, 10],
      [3, 12],
    ]);
    const v = verifyDestination({ destination: D, accepted: answered, acceptedAt: new Map(), messageId: id, wire: [] });
    expect(v.assignedGaps).toBe(1);
  });
});
