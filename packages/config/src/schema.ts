/**
 * The schema of reseq's configuration: the contract's environment variables and the config
 * file's destinations, plus the project's own tuning knobs (all optional, with defaults).
 * See docs/configuration.md for every field.
 */
import { isWebhookSecret, MIN_SECRET_BYTES, SECRET_PREFIX } from '@reseq/webhook-verify';
import { z } from 'zod';

/** Destination names become parts of Redis keys and HTTP headers: keep them plain. */
export const DESTINATION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Client ids become parts of Redis keys and of `Idempotency-Key`: printable, no spaces. */
export const MESSAGE_ID_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** Ingest source names (keys of `ingest.tokens`) go on logs and metric labels: keep them plain. */
export const SOURCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const intFromEnv = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** One `host:port` of a list such as REDIS_SENTINELS; an IPv6 host goes in brackets. */
const HOST_PORT_PATTERN = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/;

/** A network address of a Redis node or sentinel. */
export interface HostPort {
  host: string;
  port: number;
}

/** A comma-separated `host:port` list, each entry checked (every bad one is reported). */
const hostPortList = z.string().transform((list, ctx): HostPort[] => {
  const out: HostPort[] = [];
  for (const entry of list.split(',').map((e) => e.trim())) {
    const match = HOST_PORT_PATTERN.exec(entry);
    const port = Number(match?.[3]);
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not host:port (port 1-65535)` });
      continue;
    }
    out.push({ host: match[1] ?? match[2]!, port });
  }
  return out;
});

/** The environment variables, each checked on its own. */
const envFields = z.object({
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .default('redis://127.0.0.1:6379'),
  /** Sentinels to ask for the master, in place of REDIS_URL's host and port. */
  REDIS_SENTINELS: hostPortList.optional(),
  /** The master's name in the sentinels' configuration. */
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[\x21-\x7e]{1,128}$/, 'printable, no spaces')
    .default('mymaster'),
  /** Password of the sentinels themselves (the master's comes from REDIS_URL). */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /**
   * Seed nodes of a Redis Cluster (the rest are discovered), in place of REDIS_URL's host and
   * port; REDIS_URL's user, password and TLS still apply.
   */
  REDIS_CLUSTER_NODES: hostPortList.optional(),
  /** Over how many hash-tagged shards the destinations are spread (1: one tag, one slot). */
  RESEQ_SHARDS: intFromEnv(1, 1024).default(1),
  /** Replicas that must confirm (WAIT) every write that counts; 0 confirms nothing. */
  RESEQ_WAIT_REPLICAS: intFromEnv(0, 100).default(0),
  /** How long one WAIT may block before the write counts as unconfirmed, in ms. */
  RESEQ_WAIT_TIMEOUT_MS: intFromEnv(1, 60_000).default(2000),
  RESEQ_CONFIG: z.string().min(1).optional(),
  RESEQ_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits and _ . : - only')
    .default('reseq'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HTTP_PORT: intFromEnv(0, 65535).default(8080),
  TCP_PORT: intFromEnv(0, 65535).default(8081),
  TRANSFORM_MODULE: z.string().min(1).optional(),
  WORKER_CONCURRENCY: intFromEnv(1, 100_000).default(16),
  METRICS_PORT: intFromEnv(0, 65535).optional(),
  /** Stable consumer name of a worker; default `<hostname>-<pid>` (stable in a container). */
  RESEQ_CONSUMER_NAME: z
    .string()
    .regex(/^[\x21-\x7e]{1,128}$/)
    .optional(),
});

/** The environment, as the contract names it: each variable, then the rules across them. */
export const envSchema = envFields
  // `when`: checked also where another variable is wrong, so every problem is listed at once.
  .refine((env) => env.REDIS_CLUSTER_NODES === undefined || env.REDIS_SENTINELS === undefined, {
    path: ['REDIS_CLUSTER_NODES'],
    message: 'cannot be combined with REDIS_SENTINELS: a Redis Cluster fails over by itself; set one of the two',
    when: ({ value }) => typeof value === 'object' && value !== null,
  })
  .refine((env) => env.REDIS_CLUSTER_NODES === undefined || urlDatabase(env.REDIS_URL) === 0, {
    path: ['REDIS_URL'],
    message: 'must name database 0 (or none) with REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only',
    when: ({ value }) => typeof value === 'object' && value !== null,
  });

/**
 * The database index of a `redis://` URL, where ioredis reads it (`/<db>` or `?db=<db>`); 0 when
 * absent, NaN when it is not a number or the URL does not parse.
 */
export function urlDatabase(url: unknown): number {
  if (typeof url !== 'string') return Number.NaN;
  try {
    const parsed = new URL(url);
    const db = parsed.pathname.slice(1) || parsed.searchParams.get('db') || '0';
    return /^\d+$/.test(db) ? Number(db) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const retrySchema = z
  .object({
    /** First backoff step in ms. */
    baseMs: z.number().int().min(1).default(100),
    /** Largest backoff in ms. */
    maxMs: z.number().int().min(1).default(30_000),
  })
  .prefault({});

const httpDestinationSchema = z
  .object({
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/ }),
    /** What follows a dead letter: wait for an operator (`block`) or move on (`skip`). */
    onDeadLetter: z.enum(['block', 'skip']).default('block'),
    /** Per-attempt timeout of one delivery in ms. */
    timeoutMs: z.number().int().min(1).default(10_000),
    /** Extra request headers, e.g. an Authorization header of the receiver. */
    headers: z.record(z.string(), z.string()).default({}),
    /** Backoff between delivery attempts after a 5xx, 408, 429, timeout or network error. */
    retry: retrySchema,
    /**
     * `whsec_<base64>`: sign every delivery the Standard Webhooks way (`webhook-id`,
     * `webhook-timestamp`, `webhook-signature`). Default none: unsigned. The message of a bad
     * value never repeats it.
     */
    secret: z
      .string()
      .refine(isWebhookSecret, `must be "${SECRET_PREFIX}" followed by base64 of at least ${MIN_SECRET_BYTES} bytes`)
      .optional(),
    /**
     * Batch delivery, for a receiver that accepts arrays: up to `maxMessages` consecutive ready
     * messages in one `POST` whose body is a JSON array (docs/protocol.md). Absent, or
     * `maxMessages` 1: one message per request, as the contract describes.
     */
    batch: z
      .object({
        /** Most messages in one request (1-10,000); 1 switches batching off. */
        maxMessages: z.number().int().min(1).max(10_000),
      })
      .strict()
      .optional(),
  })
  .strict();

const tcpDestinationSchema = z
  .object({
    type: z.literal('tcp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    /** What follows a dead letter: wait for an operator (`block`) or move on (`skip`). */
    onDeadLetter: z.enum(['block', 'skip']).default('block'),
    /** Most lines written and not yet acknowledged on the connection. */
    window: z.number().int().min(1).max(10_000).default(64),
    /** How long the oldest unacknowledged line (or a connect) may wait before reconnecting, in ms. */
    timeoutMs: z.number().int().min(1).default(10_000),
    /** Backoff between reconnects after a lost connection, a timeout or a refused connect. */
    retry: retrySchema,
    /** TLS to the receiver; absent means plain TCP. */
    tls: z
      .object({
        /** PEM file of the CA(s) to trust instead of Node's defaults. */
        caFile: z.string().min(1).optional(),
        /** Name to verify the certificate against (default: `host`). */
        serverName: z.string().min(1).optional(),
        /** Verify the receiver's certificate (default true; switch off in tests only). */
        rejectUnauthorized: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict();

/**
 * A table name the PostgreSQL adapter puts into SQL: a plain identifier (letters, digits, `_`,
 * starting with a letter or `_`, at most 63 bytes), optionally schema-qualified (`audit.events`).
 * Plain identifiers are folded to lower case by PostgreSQL, so write them in lower case.
 */
export const SQL_TABLE_PATTERN = /^[a-z_][a-z0-9_]{0,62}(?:\.[a-z_][a-z0-9_]{0,62})?$/;

const postgresDestinationSchema = z
  .object({
    type: z.literal('postgres'),
    url: z.string().regex(/^postgres(?:ql)?:\/\//, 'must be a postgres:// or postgresql:// URL'),
    /** The table the rows go to, created if missing. */
    table: z.string().regex(SQL_TABLE_PATTERN, 'must be a lower-case SQL identifier, optionally schema.table'),
    /**
     * The table of delivered positions (one row per destination), in the same database, created
     * if missing.
     */
    positionsTable: z
      .string()
      .regex(SQL_TABLE_PATTERN, 'must be a lower-case SQL identifier, optionally schema.table')
      .default('reseq_positions'),
    /** What follows a dead letter (a payload PostgreSQL refuses): `block` or `skip`. */
    onDeadLetter: z.enum(['block', 'skip']).default('block'),
    /** Most rows in one transaction, and most sends the lane keeps outstanding. */
    window: z.number().int().min(1).max(10_000).default(256),
    /** How long one transaction (or a connect) may take before it counts as failed, in ms. */
    timeoutMs: z.number().int().min(1).default(10_000),
    /** Backoff between attempts while PostgreSQL is down, restarting or times out. */
    retry: retrySchema,
  })
  .strict();

const destinationSchema = z.discriminatedUnion('type', [
  httpDestinationSchema,
  tcpDestinationSchema,
  postgresDestinationSchema,
]);

/** A `redis://` or `rediss://` URL of a producer's Redis (a source's queues). */
const sourceRedisUrl = z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL');

/**
 * How long one ingest holds a source before another may take it over after it died, in ms;
 * also the BullMQ job lock's duration. Default 10 s.
 */
const sourceLeaseTtlMs = z.number().int().min(500).max(300_000).default(10_000);

const bullmqSourceSchema = z
  .object({
    type: z.literal('bullmq'),
    redis: sourceRedisUrl,
    /** The BullMQ queue's name, as its producers' `new Queue(name)`. */
    queue: z.string().regex(/^[\x21-\x7e]{1,100}$/, 'printable, no spaces'),
    /** The BullMQ key prefix (`prefix` of the producers' Queue options). */
    prefix: z.string().min(1).default('bull'),
    destination: z.string().regex(DESTINATION_NAME_PATTERN, 'invalid destination name'),
    leaseTtlMs: sourceLeaseTtlMs,
  })
  .strict();

const kueSourceSchema = z
  .object({
    type: z.literal('kue'),
    redis: sourceRedisUrl,
    /** Kue's key prefix (`prefix` of the producers' `kue.createQueue`). */
    prefix: z
      .string()
      .regex(/^[\x21-\x7e]{1,64}$/, 'printable, no spaces')
      .default('q'),
    /** The job type the producers `queue.create(type, data)`. */
    job: z.string().regex(/^[\x21-\x7e]{1,100}$/, 'printable, no spaces'),
    destination: z.string().regex(DESTINATION_NAME_PATTERN, 'invalid destination name'),
    leaseTtlMs: sourceLeaseTtlMs,
  })
  .strict();

/** A queue that producers already write to, consumed by ingest (`sources` in the config file). */
const sourceSchema = z.discriminatedUnion('type', [bullmqSourceSchema, kueSourceSchema]);

/** The RESEQ_CONFIG file. */
export const fileSchema = z
  .object({
    /**
     * Queues ingest consumes besides HTTP and TCP: each job's `data` becomes a message's payload,
     * in the order the producer added the jobs. Default none.
     */
    sources: z.array(sourceSchema).default([]),
    destinations: z
      .record(z.string().regex(DESTINATION_NAME_PATTERN, 'invalid destination name'), destinationSchema)
      .default({}),
    ingest: z
      .object({
        /** Largest accepted request body, in bytes (contract default 1 MiB). */
        maxMessageBytes: z
          .number()
          .int()
          .min(64)
          .default(1024 * 1024),
        /** How long a client `id` is remembered for de-duplication, in seconds. */
        idempotencyTtlSeconds: z
          .number()
          .int()
          .min(1)
          .default(24 * 60 * 60),
        /** Most requests written to Redis in one script call. */
        maxBatch: z.number().int().min(1).max(10_000).default(500),
        /** Answer 429 while the input stream holds more than this many entries. */
        maxBacklog: z.number().int().min(1).default(1_000_000),
        /**
         * Most messages one destination may have accepted but not yet delivered. Past it, ingest
         * answers 429 for that destination only, so a blocked or slow destination cannot fill
         * Redis, the workers or its reorder buffer while the others flow.
         */
        destinationWindow: z.number().int().min(1).default(10_000),
        /**
         * Ingest tokens by source name. Where at least one is set, every HTTP request needs
         * `Authorization: Bearer <token>` and every TCP connection opens with `{"auth":"<token>"}`;
         * the source's name goes on logs and metrics. Default none (no authentication).
         */
        tokens: z
          .record(
            z.string().regex(SOURCE_NAME_PATTERN, 'invalid source name'),
            z.string().regex(/^[\x21-\x7e]{16,512}$/, 'a token is 16 to 512 printable characters, no spaces'),
          )
          .default({})
          .superRefine((tokens, ctx) => {
            const values = Object.values(tokens);
            if (new Set(values).size !== values.length) {
              ctx.addIssue({ code: 'custom', message: 'two sources share one token' });
            }
          }),
        /** TLS for HTTP and TCP ingest: paths of PEM files (`ca` only to trust client chains). */
        tls: z
          .object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1).optional() })
          .strict()
          .optional(),
        /** Most open connections per protocol (HTTP, TCP); TCP connections past it are told 503 and closed. */
        maxConnections: z.number().int().min(1).default(10_000),
        /** Per-source (per remote address without tokens) token bucket; default no limit. */
        rateLimit: z
          .object({
            /** Messages per second refilled. */
            perSecond: z.number().positive(),
            /** Most messages in one burst. */
            burst: z.number().int().min(1),
          })
          .strict()
          .optional(),
        /** An HTTP request (headers and body) must arrive within this, in ms (slow clients are cut off). */
        requestTimeoutMs: z.number().int().min(100).default(30_000),
        /** A TCP connection with nothing in flight and nothing received for this long is closed, in ms. */
        idleTimeoutMs: z.number().int().min(100).default(300_000),
        /** Most unanswered lines of one TCP connection before ingest stops reading it. */
        maxPendingPerConnection: z.number().int().min(1).max(1_000_000).default(1024),
      })
      .strict()
      .prefault({}),
    transform: z
      .object({
        /** Attempts before a message is dead-lettered (contract default 5). */
        maxAttempts: z.number().int().min(1).max(1000).default(5),
        /** Backoff between attempts (full jitter). */
        retry: retrySchema,
        /** A transform running longer than this counts as a failed attempt, in ms. */
        timeoutMs: z.number().int().min(1).default(60_000),
      })
      .strict()
      .prefault({}),
    worker: z
      .object({
        /** Entries idle this long in a peer's pending list are taken over, in ms. */
        claimIdleMs: z.number().int().min(100).default(15_000),
        /** How often to look for such entries, in ms. */
        claimIntervalMs: z.number().int().min(50).default(5_000),
        /** Most entries read or written per Redis call. */
        batchSize: z.number().int().min(1).max(10_000).default(256),
        /** How long SIGTERM waits for running transforms before handing them back, in ms. */
        shutdownGraceMs: z.number().int().min(0).default(10_000),
        /**
         * Hedged dispatch: a transform attempt still running after this long gets a second copy
         * on another worker with a free slot; the first to finish wins, in ms. Default none: off.
         */
        hedgeAfterMs: z.number().int().min(10).max(86_400_000).optional(),
      })
      .strict()
      .prefault({}),
    sender: z
      .object({
        /** Lifetime of a destination lease; a dead sender's destinations move after this, in ms. */
        leaseTtlMs: z.number().int().min(500).default(10_000),
        /** Most results read per Redis call. */
        batchSize: z.number().int().min(1).max(10_000).default(512),
        /**
         * How long a destination may wait for its next sequence before the sender looks whether
         * that message still exists anywhere (input stream, result stream, reorder buffer). One
         * that exists nowhere is dead-lettered as GAP_LOST and handled by onDeadLetter, in ms.
         */
        gapTimeoutMs: z.number().int().min(100).default(30_000),
        /**
         * Delivered values kept per HTTP destination for `reseq replay` (about: trimmed with
         * `MAXLEN ~`, so a few more may stay); 0 keeps none and switches replay off.
         */
        historyLength: z.number().int().min(0).max(10_000_000).default(1000),
        /**
         * Send a destination's next message once the last one's progress is written to Redis,
         * without waiting for the reply (single Redis, no RESEQ_WAIT_REPLICAS): one Redis round
         * trip less per message of a run. Off: the reply comes first, and a receiver never sees a
         * lower sequence after a higher one but for an immediate repeat (guarantees.md).
         */
        recordAhead: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((file, ctx) => {
    const hedgeAfterMs = file.worker.hedgeAfterMs;
    if (hedgeAfterMs !== undefined && hedgeAfterMs >= file.transform.timeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['worker', 'hedgeAfterMs'],
        message: `must be below transform.timeoutMs (${file.transform.timeoutMs}): an attempt times out before it is hedged`,
      });
    }
    const seen = new Set<string>();
    file.sources.forEach((source, i) => {
      if (!Object.hasOwn(file.destinations, source.destination)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'destination'],
          message: `unknown destination "${source.destination}"`,
        });
      }
      const id = sourceId(source);
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: ['sources', i], message: `${id} is listed twice` });
      seen.add(id);
    });
    const kue = file.sources.filter((source) => source.type === 'kue');
    if (new Set(kue.map((source) => `${source.redis}|${source.prefix}`)).size > 1) {
      // The kue package keeps one queue (one Redis, one prefix) per process.
      ctx.addIssue({ code: 'custom', path: ['sources'], message: 'every kue source must share one redis and prefix' });
    }
  });

/**
 * A source's stable name, on its lease, logs and metrics: `bullmq:<queue>` or
 * `kue:<prefix>:<job type>`.
 */
export function sourceId(source: SourceConfig): string {
  return source.type === 'bullmq' ? `bullmq:${source.prefix}:${source.queue}` : `kue:${source.prefix}:${source.job}`;
}

export type EnvConfig = z.infer<typeof envSchema>;
export type FileConfig = z.infer<typeof fileSchema>;
export type DestinationConfig = z.infer<typeof destinationSchema>;
export type HttpDestinationConfig = z.infer<typeof httpDestinationSchema>;
export type TcpDestinationConfig = z.infer<typeof tcpDestinationSchema>;
export type SourceConfig = z.infer<typeof sourceSchema>;
export type BullmqSourceConfig = z.infer<typeof bullmqSourceSchema>;
export type KueSourceConfig = z.infer<typeof kueSourceSchema>;
export type PostgresDestinationConfig = z.infer<typeof postgresDestinationSchema>;

/** Everything an app needs to know, frozen. */
export interface ReseqConfig {
  env: EnvConfig;
  destinations: Readonly<Record<string, DestinationConfig>>;
  /** Queues ingest consumes (contract `sources`); empty by default. */
  sources: FileConfig['sources'];
  ingest: FileConfig['ingest'];
  transform: FileConfig['transform'];
  worker: FileConfig['worker'];
  sender: FileConfig['sender'];
}
