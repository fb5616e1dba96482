import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load-config.js';

describe('postgres destinations', () => {
  it('takes url and table, with defaults for the rest', () => {
    const config = parseConfig(
      {},
      { destinations: { audit: { type: 'postgres', url: 'postgres://reseq@db:5432/app', table: 'events' } } },
    );
    expect(config.destinations.audit).toEqual({
      type: 'postgres',
      url: 'postgres://reseq@db:5432/app',
      table: 'events',
      positionsTable: 'reseq_positions',
      onDeadLetter: 'block',
      window: 256,
      timeoutMs: 10_000,
      retry: { baseMs: 100, maxMs: 30_000 },
    });
  });

  it('takes a schema-qualified table and the tuning fields', () => {
    const config = parseConfig(
      {},
      {
        destinations: {
          audit: {
            type: 'postgres',
            url: 'postgresql://db/app',
            table: 'audit.events_2',
            positionsTable: 'audit.positions',
            window: 16,
            onDeadLetter: 'skip',
          },
        },
      },
    );
    expect(config.destinations.audit).toMatchObject({ table: 'audit.events_2', window: 16, onDeadLetter: 'skip' });
  });

  it('refuses unsafe table names, a non-postgres url, a zero window and an unknown field', () => {
    for (const bad of [
      { table: 'events; DROP TABLE x' },
      { table: '"events"' },
      { table: 'Events' },
      { table: 'a.b.c' },
      { table: '1events' },
      { table: '' },
      { positionsTable: 'pos-itions' },
      { url: 'mysql://db/app' },
      { window: 0 },
      { host: 'db' },
    ]) {
      const destination = { type: 'postgres', url: 'postgres://db/app', table: 'events', ...bad };
      expect(() => parseConfig({}, { destinations: { audit: destination } }), JSON.stringify(bad)).toThrow(ConfigError);
    }
  });
});
