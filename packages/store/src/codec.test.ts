import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBuffered, decodeInputEntry, decodeResultEntry, encodeBuffered, type Result } from './codec.js';

describe('codec', () => {
  it('round-trips any result through the reorder-buffer encoding', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Result['kind']>('value', 'none', 'dead'),
        fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.nat(),
        fc.integer({ min: 1, max: 100 }),
        fc.string(),
        (kind, id, sequence, acceptedAt, attempts, body) => {
          const result: Result = { kind, id, sequence, acceptedAt, attempts, body };
          expect(decodeBuffered(sequence, encodeBuffered(result))).toEqual(result);
        },
      ),
    );
  });

  it('keeps a body that contains the separator intact', () => {
    const result: Result = { kind: 'value', id: 'a', sequence: 1, acceptedAt: 5, attempts: 1, body: '"x\x1fy"' };
    expect(decodeBuffered(1, encodeBuffered(result))?.body).toBe('"x\x1fy"');
  });

  it('returns undefined for entries that are not reseq entries, never throws', () => {
    expect(decodeBuffered(1, 'garbage')).toBeUndefined();
    expect(decodeInputEntry('1-0', null)).toBeUndefined();
    expect(decodeInputEntry('1-0', ['foo', 'bar'])).toBeUndefined();
    expect(decodeInputEntry('1-0', ['m', 'id', 'd', 'billing', 's', '0', 'p', '1'])).toBeUndefined();
    expect(decodeResultEntry('1-0', ['k', 'q', 's', '1', 'm', 'id'])).toBeUndefined();
  });

  it('decodes the fields the Lua scripts write', () => {
    expect(decodeInputEntry('1-0', ['m', 'id-1', 'd', 'billing', 's', '7', 't', '1000', 'p', '{"a":1}'])).toEqual({
      entryId: '1-0',
      id: 'id-1',
      destination: 'billing',
      sequence: 7,
      acceptedAt: 1000,
      payload: '{"a":1}',
    });
    expect(decodeResultEntry('2-0', ['k', 'x', 's', '3', 'm', 'id-3', 't', '9', 'a', '5', 'p', 'boom'])).toEqual({
      entryId: '2-0',
      kind: 'dead',
      id: 'id-3',
      sequence: 3,
      acceptedAt: 9,
      attempts: 5,
      body: 'boom',
    });
  });
});
