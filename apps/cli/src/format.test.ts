import type { DeadLetter } from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { formatDeadLetters } from './commands/dlq-list.js';
import { formatRetry } from './commands/dlq-retry.js';
import { formatDeadLetter } from './commands/dlq-show.js';
import { formatSkip } from './commands/dlq-skip.js';
import { formatStatus, type StatusEntry } from './commands/status.js';

const idle: StatusEntry = {
  assigned: 4,
  delivered: 4,
  deadLettered: 0,
  blocked: false,
  blockedAt: null,
  buffered: 0,
  pendingResults: 0,
  lag: 0,
  inFlight: 0,
  lagSeconds: 0,
  oldestUnsettledAt: null,
  replay: null,
  skipped: 0,
  paused: false,
  pausedSince: null,
  activeSender: null,
  fencingToken: null,
  onDeadLetter: 'skip',
};
const blocked: StatusEntry = {
  ...idle,
  assigned: 17,
  delivered: 12,
  deadLettered: 1,
  blocked: true,
  blockedAt: 13,
  buffered: 4,
  lag: 5,
  inFlight: 1,
  lagSeconds: 42.25,
  oldestUnsettledAt: 1_700_000_000_000,
  activeSender: 'host-42-abc123',
  fencingToken: 7,
  onDeadLetter: 'block',
};
const paused: StatusEntry = { ...idle, paused: true, pausedSince: 1_700_000_000_000 };

const letter: DeadLetter = {
  entryId: '1700000000000-0',
  destination: 'billing',
  sequence: 13,
  id: 'order-13',
  attempts: 5,
  lastError: 'TRANSFORM_ATTEMPTS_EXHAUSTED: Error: upstream\ntimed out',
  stage: 'transform',
  acceptedAt: 1_700_000_000_000,
  deadLetteredAt: 1_700_000_001_000,
  payload: '{"amount":3}',
  state: 'blocking',
};

describe('formatStatus', () => {
  it('prints the contract JSON: destinations by name, the four contract fields first', () => {
    const text = formatStatus({ destinations: { billing: blocked } }, true);
    const parsed = JSON.parse(text) as { destinations: Record<string, object> };
    expect(parsed).toEqual({ destinations: { billing: blocked } });
    expect(Object.keys(parsed.destinations.billing!).slice(0, 4)).toEqual([
      'assigned',
      'delivered',
      'deadLettered',
      'blocked',
    ]);
  });

  it('prints a table, and says what to do about a block', () => {
    const text = formatStatus({ destinations: { billing: blocked, ledger: idle } }, false);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^DESTINATION +ASSIGNED +DELIVERED +LAG +LAG \(S\) +IN FLIGHT +DEAD LETTERS +BLOCKED/);
    expect(lines[1]).toMatch(
      /^billing +17 +12 +5 +42\.3 +1 +1 +yes, at 13 +no +4 +0 +0 +block +host-42-abc123 \(token 7\)$/,
    );
    expect(lines[2]).toMatch(/^ledger +4 +4 +0 +0\.0 +0 +0 +no +no +0 +0 +0 +skip +-$/);
    expect(text).toContain("blocked: billing at 13; see 'pnpm reseq dlq list'");
  });

  it('shows a paused destination, and how to resume it', () => {
    const text = formatStatus({ destinations: { audit: paused } }, false);
    expect(text.split('\n')[1]).toMatch(/^audit +4 +4 +0 +0\.0 +0 +0 +no +yes /);
    expect(text).toContain("paused: audit; see 'pnpm reseq destination resume <destination>'");
    expect(JSON.parse(formatStatus({ destinations: { audit: paused } }, true))).toEqual({
      destinations: { audit: expect.objectContaining({ paused: true, pausedSince: 1_700_000_000_000 }) as unknown },
    });
  });

  it('shows an unknown age as ?, and a pending or running replay under the table', () => {
    const pending = { id: 'r1', from: 3, requested: 6, requestedAt: 1_700_000_000_000, to: null, next: null };
    const text = formatStatus(
      {
        destinations: {
          billing: { ...blocked, lagSeconds: null, replay: pending },
          audit: { ...idle, replay: { ...pending, to: 7, next: 5 } },
        },
      },
      false,
    );
    expect(text.split('\n')[1]).toMatch(/^billing +17 +12 +5 +\? +1 +1 /);
    expect(text).toContain(
      'replay pending: billing from 3 (requested 2023-11-14T22:13:20.000Z; its sender takes it up)',
    );
    expect(text).toContain('replaying: audit from 3 to 7, next 5');
  });

  it('says so when there is no destination at all', () => {
    expect(formatStatus({ destinations: {} }, false)).toMatch(/^no destinations/);
    expect(formatStatus({ destinations: {} }, true)).toBe('{\n  "destinations": {}\n}');
  });
});

describe('formatDeadLetters', () => {
  it('prints JSON with ISO times and the payload parsed', () => {
    expect(JSON.parse(formatDeadLetters([letter], true))).toEqual({
      deadLetters: [
        {
          destination: 'billing',
          sequence: 13,
          id: 'order-13',
          attempts: 5,
          lastError: letter.lastError,
          stage: 'transform',
          state: 'blocking',
          acceptedAt: '2023-11-14T22:13:20.000Z',
          deadLetteredAt: '2023-11-14T22:13:21.000Z',
          entryId: '1700000000000-0',
          payload: { amount: 3 },
        },
      ],
    });
    const raw = JSON.parse(formatDeadLetters([{ ...letter, payload: 'not json' }], true)) as {
      deadLetters: { payload: unknown }[];
    };
    expect(raw.deadLetters[0]!.payload).toBe('not json');
  });

  it('prints a table with one line per dead letter', () => {
    const lines = formatDeadLetters([letter], false).split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^billing +13 +order-13 +transform +blocking +5 +2023-11-14T22:13:21.000Z +TRANSFORM_ATTEMPTS_EXHAUSTED: Error: upstream timed out$/,
    );
    expect(formatDeadLetters([], false)).toBe('no dead letters');
  });
});

describe('formatDeadLetter', () => {
  it('shows every field, what to do next, and the payload pretty-printed', () => {
    const text = formatDeadLetter(letter, false);
    expect(text).toMatch(/^state: +blocking \(it blocks its destination/m);
    expect(text).toContain('payload (original):\n{\n  "amount": 3\n}');
    expect(formatDeadLetter({ ...letter, stage: 'delivery' }, false)).toContain('payload (transformed):');
  });
});

describe('retry and skip answers', () => {
  it('say what happens next, in a sentence or as JSON', () => {
    expect(formatRetry('billing', 3, { stage: 'transform', inputEntryId: '1-0' }, false)).toMatch(
      /^retried billing 3: back on the input stream/,
    );
    expect(formatRetry('billing', 3, { stage: 'delivery', inputEntryId: undefined }, false)).toMatch(/delivered again/);
    expect(JSON.parse(formatRetry('billing', 3, { stage: 'delivery', inputEntryId: undefined }, true))).toEqual({
      destination: 'billing',
      sequence: 3,
      retried: true,
      stage: 'delivery',
    });
    expect(formatSkip('billing', 3, 'skipped', false)).toMatch(/^skipped billing 3: it is never delivered/);
    expect(formatSkip('billing', 3, 'removed', false)).toMatch(/^removed the dead letter of billing at 3/);
  });
});
