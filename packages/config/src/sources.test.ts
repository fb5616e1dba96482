import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load-config.js';
import { sourceId } from './schema.js';

const billing = { type: 'http', url: 'http://127.0.0.1:9001/in' };

function problems(file: unknown): readonly string[] {
  try {
    parseConfig({}, file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('sources', () => {
  it('defaults to none and fills the defaults of each source', () => {
    expect(parseConfig({}, {}).sources).toEqual([]);
    const config = parseConfig(
      {},
      {
        destinations: { billing },
        sources: [
          { type: 'bullmq', redis: 'redis://q:6379', queue: 'orders', destination: 'billing' },
          { type: 'kue', redis: 'redis://q:6379', job: 'convert', destination: 'billing' },
        ],
      },
    );
    expect(config.sources).toEqual([
      {
        type: 'bullmq',
        redis: 'redis://q:6379',
        queue: 'orders',
        prefix: 'bull',
        destination: 'billing',
        leaseTtlMs: 10_000,
      },
      { type: 'kue', redis: 'redis://q:6379', job: 'convert', prefix: 'q', destination: 'billing', leaseTtlMs: 10_000 },
    ]);
    expect(config.sources.map(sourceId)).toEqual(['bullmq:bull:orders', 'kue:q:convert']);
  });

  it('lists every bad source: unknown destination, duplicates, a second kue queue, bad fields', () => {
    const found = problems({
      destinations: { billing },
      sources: [
        { type: 'bullmq', redis: 'redis://q', queue: 'orders', destination: 'nowhere' },
        { type: 'kue', redis: 'redis://a', job: 'x', destination: 'billing' },
        { type: 'kue', redis: 'redis://b', job: 'x', destination: 'billing' },
        { type: 'kue', redis: 'http://b', job: 'y', destination: 'billing', extra: 1 },
      ],
    });
    expect(found.join('\n')).toMatch(/sources\.0\.destination: unknown destination "nowhere"/);
    expect(found.join('\n')).toMatch(/sources\.3\.redis: must be a redis/);
    expect(found.join('\n')).toMatch(/sources\.3: .*extra/i);
    expect(
      problems({
        destinations: { billing },
        sources: [
          { type: 'kue', redis: 'redis://a', job: 'x', destination: 'billing' },
          { type: 'kue', redis: 'redis://b', job: 'y', destination: 'billing' },
          { type: 'kue', redis: 'redis://a', job: 'x', destination: 'billing' },
        ],
      }).join('\n'),
    ).toMatch(/kue:q:x is listed twice[\s\S]*share one redis and prefix/);
  });
});
