import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from './load-config.js';

const billing = { type: 'http', url: 'http://127.0.0.1:9001/in' };

describe('parseConfig', () => {
  it('applies the contract defaults', () => {
    const config = parseConfig({}, {});
    expect(config.env).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      RESEQ_PREFIX: 'reseq',
      LOG_LEVEL: 'info',
      HTTP_PORT: 8080,
      TCP_PORT: 8081,
      WORKER_CONCURRENCY: 16,
    });
    expect(config.env.METRICS_PORT).toBeUndefined();
    expect(config.destinations).toEqual({});
    expect(config.ingest.maxMessageBytes).toBe(1024 * 1024);
    expect(config.transform.maxAttempts).toBe(5);
  });

  it('fills destination defaults: onDeadLetter block, timeouts, retry', () => {
    const config = parseConfig({}, { destinations: { billing } });
    expect(config.destinations.billing).toMatchObject({
      type: 'http',
      onDeadLetter: 'block',
      timeoutMs: 10_000,
      retry: { baseMs: 100, maxMs: 30_000 },
    });
  });

  it('lists every problem at once, from the environment and the file', () => {
    let error: unknown;
    try {
      parseConfig(
        { REDIS_URL: 'http://nope', WORKER_CONCURRENCY: 'many' },
        { destinations: { 'bad name': billing, ok: { type: 'http', url: 'not a url' } }, surprise: 1 },
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, code } = error as ConfigError;
    expect(code).toBe('CONFIG_INVALID');
    expect(problems.length).toBeGreaterThanOrEqual(5);
    expect(problems.join('\n')).toMatch(/REDIS_URL/);
    expect(problems.join('\n')).toMatch(/WORKER_CONCURRENCY/);
    expect(problems.join('\n')).toMatch(/destinations\.ok\.url/);
    expect(problems.join('\n')).toMatch(/surprise/);
  });

  it('rejects destination types this version cannot deliver to', () => {
    expect(() => parseConfig({}, { destinations: { ledger: { type: 'ftp', host: 'x' } } })).toThrow(ConfigError);
  });

  it('takes a whsec_ secret on an HTTP destination and refuses a malformed one without echoing it', () => {
    const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    expect(parseConfig({}, { destinations: { billing: { ...billing, secret } } }).destinations.billing).toMatchObject({
      secret,
    });
    for (const bad of [
      'whsec_c2hvcnQ=',
      'c2VjcmV0LXdpdGhvdXQtcHJlZml4LTEyMzQ=',
      'whsec_not-base64-at-all!!!!!!!!!!!!!!',
    ]) {
      try {
        parseConfig({}, { destinations: { billing: { ...billing, secret: bad } } });
        expect.unreachable();
      } catch (err) {
        expect((err as ConfigError).problems).toEqual([
          expect.stringMatching(/^RESEQ_CONFIG destinations\.billing\.secret: must be "whsec_" followed by base64/),
        ]);
        expect((err as Error).message).not.toContain(bad);
      }
    }
  });

  it('treats empty environment values as unset', () => {
    expect(parseConfig({ METRICS_PORT: '', RESEQ_PREFIX: '' }, {}).env).toMatchObject({ RESEQ_PREFIX: 'reseq' });
  });

  it('freezes the result', () => {
    const config = parseConfig({}, { destinations: { billing } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.destinations.billing)).toBe(true);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reseq-config-'));

  it('reads JSON and YAML files', () => {
    const json = join(dir, 'reseq.json');
    writeFileSync(json, JSON.stringify({ destinations: { billing } }));
    const yaml = join(dir, 'reseq.yaml');
    writeFileSync(
      yaml,
      'destinations:\n  billing:\n    type: http\n    url: http://127.0.0.1:9001/in\n    onDeadLetter: skip\n',
    );
    expect(Object.keys(loadConfig({ RESEQ_CONFIG: json }).destinations)).toEqual(['billing']);
    expect(loadConfig({ RESEQ_CONFIG: yaml }).destinations.billing?.onDeadLetter).toBe('skip');
  });

  it('fails clearly on a missing or unparsable file', () => {
    expect(() => loadConfig({ RESEQ_CONFIG: join(dir, 'missing.json') })).toThrow(/cannot read/);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ nope');
    expect(() => loadConfig({ RESEQ_CONFIG: broken })).toThrow(/not valid JSON/);
  });
});
