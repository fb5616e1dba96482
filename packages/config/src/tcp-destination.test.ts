import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load-config.js';

describe('tcp destinations', () => {
  it('takes host and port, with defaults for the rest', () => {
    const config = parseConfig({}, { destinations: { ledger: { type: 'tcp', host: '127.0.0.1', port: 9002 } } });
    expect(config.destinations.ledger).toEqual({
      type: 'tcp',
      host: '127.0.0.1',
      port: 9002,
      onDeadLetter: 'block',
      window: 64,
      timeoutMs: 10_000,
      retry: { baseMs: 100, maxMs: 30_000 },
    });
  });

  it('takes tls and the tuning fields; http destinations are unchanged beside it', () => {
    const config = parseConfig(
      {},
      {
        destinations: {
          ledger: { type: 'tcp', host: 'ledger', port: 9443, window: 8, timeoutMs: 500, tls: { caFile: '/ca.pem' } },
          billing: { type: 'http', url: 'http://127.0.0.1:9001/in' },
        },
      },
    );
    expect(config.destinations.ledger).toMatchObject({
      window: 8,
      tls: { caFile: '/ca.pem', rejectUnauthorized: true },
    });
    expect(config.destinations.billing).toMatchObject({ type: 'http', timeoutMs: 10_000 });
  });

  it('refuses a bad port, a zero window, an unknown field and an http field', () => {
    for (const bad of [
      { type: 'tcp', host: 'x', port: 0 },
      { type: 'tcp', host: 'x', port: 9002, window: 0 },
      { type: 'tcp', host: 'x', port: 9002, colour: 'red' },
      { type: 'tcp', host: 'x', port: 9002, url: 'http://x/' },
      { type: 'tcp', port: 9002 },
    ]) {
      expect(() => parseConfig({}, { destinations: { ledger: bad } }), JSON.stringify(bad)).toThrow(ConfigError);
    }
  });
});
