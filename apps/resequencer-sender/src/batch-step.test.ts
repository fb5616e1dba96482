import { ReorderBuffer } from '@reseq/resequencer';
import type { Result, ResultKind } from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { collectBatch } from './batch-step.js';

function result(sequence: number, kind: ResultKind = 'value'): Result {
  return {
    kind,
    id: `m${sequence}`,
    sequence,
    acceptedAt: 1,
    attempts: 1,
    body: kind === 'value' ? `{"n":${sequence}}` : '',
  };
}

/** A buffer at `delivered` holding `results`. */
function buffer(delivered: number, results: Result[]): ReorderBuffer<Result> {
  const b = new ReorderBuffer<Result>(delivered);
  for (const r of results) b.offer(r.sequence, r);
  return b;
}

const sequences = (batch: ReturnType<typeof collectBatch>) =>
  batch && { values: batch.values.map((r) => r.sequence), from: batch.from, to: batch.to };

describe('collectBatch', () => {
  it('takes the consecutive ready values from the head, up to the maximum', () => {
    const b = buffer(
      10,
      [11, 12, 13, 14, 15].map((n) => result(n)),
    );
    expect(sequences(collectBatch(b, 50))).toEqual({ values: [11, 12, 13, 14, 15], from: 11, to: 15 });
    expect(sequences(collectBatch(b, 3))).toEqual({ values: [11, 12, 13], from: 11, to: 13 });
  });

  it('never waits for a missing sequence: what is ready before it goes', () => {
    const b = buffer(
      0,
      [1, 2, 4, 5].map((n) => result(n)),
    );
    expect(sequences(collectBatch(b, 50))).toEqual({ values: [1, 2], from: 1, to: 2 });
  });

  it('covers a dropped result inside without sending it, and ends at its last value', () => {
    const b = buffer(0, [result(1), result(2, 'none'), result(3), result(4, 'none'), result(5, 'none')]);
    expect(sequences(collectBatch(b, 50))).toEqual({ values: [1, 3], from: 1, to: 3 });
    // Drops do not count toward the maximum: it counts messages sent.
    expect(sequences(collectBatch(b, 2))).toEqual({ values: [1, 3], from: 1, to: 3 });
  });

  it('ends in front of a dead letter, which the lane settles on its own', () => {
    const b = buffer(0, [result(1), result(2), result(3, 'dead'), result(4)]);
    expect(sequences(collectBatch(b, 50))).toEqual({ values: [1, 2], from: 1, to: 2 });
  });

  it('makes no batch of fewer than two values: the one-at-a-time path sends those', () => {
    expect(collectBatch(buffer(0, [result(1), result(3)]), 50)).toBeUndefined();
    expect(collectBatch(buffer(0, [result(1), result(2, 'dead'), result(3)]), 50)).toBeUndefined();
    expect(collectBatch(buffer(0, [result(1), result(2)]), 1)).toBeUndefined();
    expect(collectBatch(buffer(0, []), 50)).toBeUndefined();
  });
});
