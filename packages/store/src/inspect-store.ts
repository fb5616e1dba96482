/**
 * The raw picture behind `reseq inspect`: the input stream and its consumer group, the pending
 * entries per consumer, the dead letters and hedge requests, and per destination its result
 * stream, reorder buffer, dead letters, retained history, replay under way and lease, each
 * figure with the redis-cli command that shows the same (the real key names of the pipeline).
 * Read-only; figures come from separate reads, so they are close together, not one snapshot.
 */
import type { Redis } from 'ioredis';
import { WORKER_GROUP, type KeySchema } from './keys.js';

/** One figure and the redis-cli command an operator runs to see it. */
export interface Figure<T> {
  value: T;
  command: string;
}

/** One consumer group of the input stream, as XINFO GROUPS shows it. */
export interface GroupInfo {
  name: string;
  consumers: number;
  /** Entries delivered to a consumer and not yet acknowledged. */
  pending: number;
  lastDeliveredId: string;
  /** Entries not yet delivered to any consumer of the group (null when Redis cannot tell). */
  lag: number | null;
}

/** The raw state of one pipeline, or of one of its shards (RESEQ_SHARDS). */
export interface Inspection {
  prefix: string;
  /** The hash tag of every key shown, e.g. `{reseq}`. */
  tag: string;
  input: {
    key: string;
    length: Figure<number>;
    groups: Figure<GroupInfo[]>;
    /** XPENDING summary of the workers' group: pending entries per consumer. */
    pending: Figure<{
      total: number;
      oldestId: string | null;
      newestId: string | null;
      consumers: Record<string, number>;
    }>;
  };
  deadLetters: { key: string; length: Figure<number> };
  /** Hedge requests not yet taken (`worker.hedgeAfterMs`; always 0 without it). */
  hedges: { key: string; length: Figure<number> };
  /** The per-destination hashes: destination -> value. */
  hashes: Record<
    'sequences' | 'delivered' | 'blocked' | 'paused' | 'fences',
    Figure<Record<string, string>> & { key: string }
  >;
  destinations: Record<
    string,
    {
      results: Figure<number> & { key: string };
      buffer: Figure<number> & { key: string };
      deadLetterIndex: Figure<number> & { key: string };
      /** Delivered values retained for `reseq replay` (`sender.historyLength`). */
      history: Figure<number> & { key: string };
      /** The replay under way (`id`, `from`, `requested`, `at`, `to`, `next`), or null. */
      replay: Figure<Record<string, string> | null> & { key: string };
      /** "<sender id>|<fencing token>", or null when no sender holds it. */
      lease: Figure<string | null> & { key: string; ttlMs: number | null };
    }
  >;
}

/** A key as a shell word: `{reseq}:in` needs no quotes in most shells, but some expand braces. */
const q = (key: string): string => `'${key.replace(/'/g, `'\\''`)}'`;

function pairs(flat: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

/** Runs a read that fails on a missing key or group (XINFO, XPENDING) as `fallback`. */
async function orElse<T>(read: Promise<T>, fallback: T): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if (err instanceof Error && /no such key|NOGROUP/i.test(err.message)) return fallback;
    throw err;
  }
}

/** Reads the raw state of the pipeline of `keys` for the given destinations. */
export async function inspectPipeline(
  redis: Redis,
  keys: KeySchema,
  destinations: readonly string[],
): Promise<Inspection> {
  const input = keys.input;
  // XINFO rides with XLEN in one pipeline, so a Cluster client sends it to the stream's master.
  const [[lengthError, length] = [null, 0], [groupsError, groupsRaw] = [null, []]] =
    (await redis.pipeline().xlen(input).call('XINFO', 'GROUPS', input).exec()) ?? [];
  if (lengthError) throw lengthError;
  const [groupsReply, pendingReply, dlqLength, hedgeCount] = await Promise.all([
    orElse(groupsError ? Promise.reject(groupsError) : Promise.resolve(groupsRaw), [] as unknown),
    orElse(redis.call('XPENDING', input, WORKER_GROUP), [0, null, null, null] as unknown),
    redis.xlen(keys.deadLetters),
    redis.zcard(keys.hedges),
  ]);
  const groups: GroupInfo[] = (Array.isArray(groupsReply) ? groupsReply : []).map((raw) => {
    const g = pairs(raw);
    return {
      name: String(g.name),
      consumers: Number(g.consumers ?? 0),
      pending: Number(g.pending ?? 0),
      lastDeliveredId: typeof g['last-delivered-id'] === 'string' ? g['last-delivered-id'] : '',
      lag: g.lag === null || g.lag === undefined ? null : Number(g.lag),
    };
  });
  const [total, oldestId, newestId, perConsumer] = (Array.isArray(pendingReply) ? pendingReply : []) as [
    unknown,
    unknown,
    unknown,
    unknown,
  ];
  const consumers: Record<string, number> = {};
  if (Array.isArray(perConsumer)) {
    for (const entry of perConsumer as unknown[][]) consumers[String(entry[0])] = Number(entry[1]);
  }

  const hashKeys = {
    sequences: keys.sequences,
    delivered: keys.delivered,
    blocked: keys.blocked,
    paused: keys.paused,
    fences: keys.fences,
  } as const;
  const hashValues = await Promise.all(Object.values(hashKeys).map((key) => redis.hgetall(key)));
  const hashes = Object.fromEntries(
    Object.entries(hashKeys).map(([name, key], i) => [
      name,
      { key, value: hashValues[i]!, command: `redis-cli HGETALL ${q(key)}` },
    ]),
  ) as Inspection['hashes'];

  const perDestination = await Promise.all(
    destinations.map(async (d) => {
      const [results, buffer, dead, history, replay, lease, ttl] = await Promise.all([
        redis.xlen(keys.results(d)),
        redis.hlen(keys.buffer(d)),
        redis.hlen(keys.deadLetterIndex(d)),
        redis.xlen(keys.history(d)),
        redis.hgetall(keys.replay(d)),
        redis.get(keys.lease(d)),
        redis.pttl(keys.lease(d)),
      ]);
      return [
        d,
        {
          results: { key: keys.results(d), value: results, command: `redis-cli XLEN ${q(keys.results(d))}` },
          buffer: { key: keys.buffer(d), value: buffer, command: `redis-cli HLEN ${q(keys.buffer(d))}` },
          deadLetterIndex: {
            key: keys.deadLetterIndex(d),
            value: dead,
            command: `redis-cli HLEN ${q(keys.deadLetterIndex(d))}`,
          },
          history: { key: keys.history(d), value: history, command: `redis-cli XLEN ${q(keys.history(d))}` },
          replay: {
            key: keys.replay(d),
            value: Object.keys(replay).length === 0 ? null : replay,
            command: `redis-cli HGETALL ${q(keys.replay(d))}`,
          },
          lease: {
            key: keys.lease(d),
            value: lease,
            ttlMs: ttl >= 0 ? ttl : null,
            command: `redis-cli GET ${q(keys.lease(d))}; redis-cli PTTL ${q(keys.lease(d))}`,
          },
        },
      ] as const;
    }),
  );

  return {
    prefix: keys.prefix,
    tag: keys.tag,
    input: {
      key: input,
      length: { value: Number(length), command: `redis-cli XLEN ${q(input)}` },
      groups: { value: groups, command: `redis-cli XINFO GROUPS ${q(input)}` },
      pending: {
        value: {
          total: Number(total ?? 0),
          oldestId: typeof oldestId === 'string' ? oldestId : null,
          newestId: typeof newestId === 'string' ? newestId : null,
          consumers,
        },
        command: `redis-cli XPENDING ${q(input)} ${WORKER_GROUP}`,
      },
    },
    deadLetters: {
      key: keys.deadLetters,
      length: { value: dlqLength, command: `redis-cli XLEN ${q(keys.deadLetters)}` },
    },
    hedges: { key: keys.hedges, length: { value: hedgeCount, command: `redis-cli ZCARD ${q(keys.hedges)}` } },
    hashes,
    destinations: Object.fromEntries(perDestination),
  };
}
