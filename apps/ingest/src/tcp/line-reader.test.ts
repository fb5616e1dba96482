import { describe, expect, it } from 'vitest';
import { LineReader } from './line-reader.js';

function read(chunks: (string | Buffer)[], max = 8): string[] {
  const out: string[] = [];
  const reader = new LineReader(max, {
    line: (line) => out.push(line.toString('latin1')),
    oversized: () => out.push('<oversized>'),
  });
  for (const chunk of chunks) reader.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'latin1'));
  return out;
}

describe('LineReader', () => {
  it('splits lines across chunks and drops a trailing \\r', () => {
    expect(read(['ab', 'c\nde\r\n', '\nf', 'g\n', 'partial'])).toEqual(['abc', 'de', '', 'fg']);
  });

  it('counts the limit without the \\r', () => {
    expect(read(['12345678\r\n', '12345678\n', '123456789\n'])).toEqual(['12345678', '12345678', '<oversized>']);
  });

  it('reports a long line once, discards it up to its newline and goes on', () => {
    expect(read(['0123456789', 'abcdefghij', 'klm\nok\n'])).toEqual(['<oversized>', 'ok']);
    expect(read(['0123456789\nok\n'])).toEqual(['<oversized>', 'ok']);
  });

  it('ignores everything once closed', () => {
    const out: string[] = [];
    const reader = new LineReader(8, {
      line: (line) => {
        out.push(line.toString());
        reader.close();
      },
      oversized: () => out.push('<oversized>'),
    });
    reader.push(Buffer.from('a\nb\nc\n'));
    expect(out).toEqual(['a']);
  });
});
