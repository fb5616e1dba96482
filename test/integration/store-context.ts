/**
 * Shared set-up of the `@reseq/store` integration tests: connections to the run's test Redis
 * (never the one on 6379) made the way the apps make them, a key schema under a prefix of the
 * test's own, and small helpers to put messages and results where a test needs them.
 */
import { createLogger } from '@reseq/runtime';
import {
  KeySchema,
  connectRedis,
  createRedis,
  decodeInputEntry,
  decodeResultEntry,
  writeIngestBatch,
  type InputEntry,
  type IngestOutcome,
  type ReseqRedis,
  type ResultEntry,
} from '@reseq/store';
import { inject } from 'vitest';
import { deleteKeys, uniquePrefix } from '../fixtures/redis.js';

const logger = createLogger({ app: 'test', level: 'silent' });

/** One test's view of Redis. */
export interface StoreContext {
  keys: KeySchema;
  /** Connection for scripts and plain commands (what an operator would type in redis-cli). */
  redis: ReseqRedis;
  /** Opens another connection (a second process, or one reserved for blocking reads). */
  connect(name: string): Promise<ReseqRedis>;
  /** Deletes the test's keys and closes every connection it opened. */
  close(): Promise<void>;
}

/** Opens connections to the test Redis under a key prefix of the test's own. */
export async function openStore(testName: string): Promise<StoreContext> {
  const url = inject('redisUrl');
  if (new URL(url).port === '6379') throw new Error(`refusing to run against the shared Redis at ${url}`);
  const keys = new KeySchema(uniquePrefix(testName));
  const opened: ReseqRedis[] = [];
  const connect = async (name: string): Promise<ReseqRedis> => {
    const redis = createRedis({ url, name: `test-${name}`, logger, mode: 'wait' });
    opened.push(redis);
    await connectRedis(redis);
    return redis;
  };
  const redis = await connect('main');
  return {
    keys,
    redis,
    connect,
    async close() {
      // Every key of the schema starts with the hash tag `{<prefix>}`.
      await deleteKeys(redis, keys.tag);
      for (const connection of opened) connection.disconnect();
    },
  };
}

/** Ingest options for tests: a day of de-duplication, a backlog limit that is never hit. */
export const INGEST = { idempotencyTtlSeconds: 86_400, maxBacklog: 1_000_000, destinationWindow: 1_000_000 } as const;

/** Writes one message (no client id unless given) and returns its sequences. */
export async function ingest(
  ctx: StoreContext,
  destinations: readonly string[],
  payload: unknown,
  clientId?: string,
): Promise<IngestOutcome> {
  const [outcome] = await writeIngestBatch(
    ctx.redis,
    ctx.keys,
    [
      {
        id: clientId ?? `gen-${Math.random().toString(36).slice(2)}`,
        clientId: clientId !== undefined,
        destinations,
        payload: JSON.stringify(payload),
      },
    ],
    INGEST,
  );
  return outcome!;
}

/** Every entry of the input stream, decoded, in stream order (throws on a foreign entry). */
export async function inputEntries(ctx: StoreContext): Promise<InputEntry[]> {
  const raw = await ctx.redis.xrange(ctx.keys.input, '-', '+');
  return raw.map(([entryId, fields]) => {
    const entry = decodeInputEntry(entryId, fields);
    if (!entry) throw new Error(`input entry ${entryId} is not a message: ${JSON.stringify(fields)}`);
    return entry;
  });
}

/** Every entry of a destination's result stream, decoded, in stream order. */
export async function resultEntries(ctx: StoreContext, destination: string): Promise<ResultEntry[]> {
  const raw = await ctx.redis.xrange(ctx.keys.results(destination), '-', '+');
  return raw.map(([entryId, fields]) => {
    const entry = decodeResultEntry(entryId, fields);
    if (!entry) throw new Error(`result entry ${entryId} is malformed: ${JSON.stringify(fields)}`);
    return entry;
  });
}

/** A stream entry's fields as an object, the way `XRANGE` shows them to an operator. */
export function fieldsOf(fields: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}
