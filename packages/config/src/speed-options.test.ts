import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load-config.js';

const billing = { type: 'http', url: 'http://127.0.0.1:9001/in' };

/** The problems a config file is refused with. */
function problems(file: unknown): string[] {
  try {
    parseConfig({}, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return [...(err as ConfigError).problems];
  }
  throw new Error('the config was accepted');
}

describe('worker.hedgeAfterMs (hedged dispatch)', () => {
  it('is off unless set, and takes a number of milliseconds below the transform timeout', () => {
    expect(parseConfig({}, {}).worker.hedgeAfterMs).toBeUndefined();
    expect(parseConfig({}, { worker: { hedgeAfterMs: 1500 } }).worker.hedgeAfterMs).toBe(1500);
    expect(parseConfig({}, { worker: { hedgeAfterMs: 500 }, transform: { timeoutMs: 501 } }).worker.hedgeAfterMs).toBe(
      500,
    );
  });

  it('refuses a value that is no whole number of ms of at least 10, naming the field', () => {
    for (const bad of [0, 9, -5, 1.5, '1000', null]) {
      expect(problems({ worker: { hedgeAfterMs: bad } }).join('\n'), String(bad)).toMatch(/worker\.hedgeAfterMs/);
    }
  });

  it('refuses a value at or above transform.timeoutMs: the attempt would time out before its hedge', () => {
    expect(problems({ worker: { hedgeAfterMs: 60_000 } })).toEqual([
      'RESEQ_CONFIG worker.hedgeAfterMs: must be below transform.timeoutMs (60000): an attempt times out before it is hedged',
    ]);
    expect(problems({ worker: { hedgeAfterMs: 2000 }, transform: { timeoutMs: 1000 } }).join('\n')).toMatch(
      /worker\.hedgeAfterMs: must be below transform\.timeoutMs \(1000\)/,
    );
  });
});

describe('batch delivery (an HTTP destination’s batch)', () => {
  it('is absent unless set, and takes maxMessages from 1 (off) to 10,000', () => {
    expect(parseConfig({}, { destinations: { billing } }).destinations.billing).not.toHaveProperty('batch');
    for (const maxMessages of [1, 50, 10_000]) {
      const config = parseConfig({}, { destinations: { billing: { ...billing, batch: { maxMessages } } } });
      expect(config.destinations.billing).toMatchObject({ type: 'http', batch: { maxMessages } });
    }
  });

  it('refuses a bad maxMessages, a missing one or an unknown field, naming the field', () => {
    for (const batch of [
      { maxMessages: 0 },
      { maxMessages: 10_001 },
      { maxMessages: 2.5 },
      {},
      { maxMessages: 5, wait: 10 },
      50,
    ]) {
      expect(problems({ destinations: { billing: { ...billing, batch } } }).join('\n'), JSON.stringify(batch)).toMatch(
        /destinations\.billing\.batch/,
      );
    }
  });

  it('is an HTTP option only: a tcp or postgres destination with batch is refused', () => {
    const tcp = { type: 'tcp', host: '127.0.0.1', port: 9002, batch: { maxMessages: 5 } };
    const postgres = { type: 'postgres', url: 'postgres://db/app', table: 'events', batch: { maxMessages: 5 } };
    expect(problems({ destinations: { ledger: tcp } }).join('\n')).toMatch(/destinations\.ledger/);
    expect(problems({ destinations: { audit: postgres } }).join('\n')).toMatch(/destinations\.audit/);
  });
});

describe('sender.recordAhead (progress on its way)', () => {
  it('is off unless set to true', () => {
    expect(parseConfig({}, {}).sender.recordAhead).toBe(false);
    expect(parseConfig({}, { sender: { recordAhead: true } }).sender.recordAhead).toBe(true);
  });

  it('refuses anything but a boolean, naming the field', () => {
    for (const bad of ['true', 1, null]) {
      expect(problems({ sender: { recordAhead: bad } }).join('\n'), String(bad)).toMatch(/sender\.recordAhead/);
    }
  });
});
