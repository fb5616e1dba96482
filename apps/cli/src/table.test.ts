import { describe, expect, it } from 'vitest';
import { isoTime, renderTable, truncate } from './table.js';

describe('renderTable', () => {
  it('pads columns to their widest cell, numbers to the right, without trailing spaces', () => {
    const text = renderTable(
      [{ header: 'NAME' }, { header: 'N', right: true }, { header: 'NOTE' }],
      [
        ['billing', '17', ''],
        ['a', '3', 'blocked'],
      ],
    );
    expect(text.split('\n')).toEqual(['NAME      N  NOTE', 'billing  17', 'a         3  blocked']);
  });

  it('prints only the header for no rows', () => {
    expect(renderTable([{ header: 'A' }, { header: 'B' }], [])).toBe('A  B');
  });
});

describe('truncate', () => {
  it('keeps short text, flattens whitespace and cuts long text with an ellipsis', () => {
    expect(truncate('short', 10)).toBe('short');
    expect(truncate('two\nlines', 20)).toBe('two lines');
    expect(truncate('abcdefghijkl', 6)).toBe('abcde…');
  });
});

describe('isoTime', () => {
  it('formats ms since the epoch, and a dash for none', () => {
    expect(isoTime(0)).toBe('-');
    expect(isoTime(Number.NaN)).toBe('-');
    expect(isoTime(1_700_000_000_000)).toBe('2023-11-14T22:13:20.000Z');
  });
});
