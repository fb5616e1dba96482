/**
 * The chaos run's parameters: every one has a default that scales with the number of messages,
 * and each can be set by a command-line flag or an environment variable (the flag wins).
 * `CHAOS_MESSAGES=3000` is the short run that `npm test` includes; the default is the full run.
 */
import { parseArgs } from 'node:util';

/** The three kinds of app process the chaos loop kills. */
export const APP_KINDS = ['ingest', 'worker', 'sender'] as const;

/** One kind of app process. */
export type AppKind = (typeof APP_KINDS)[number];

/** What one chaos run does. */
export interface ChaosOptions {
  /** Messages the load generator sends (each to one destination, every fifth to a second one). */
  messages: number;
  /** HTTP sinks, one per destination. */
  destinations: number;
  /** How long the load and the chaos last, in ms: messages are sent at an even pace over it. */
  durationMs: number;
  /** Client requests in flight at once. */
  concurrency: number;
  /** Processes of each kind. */
  processes: Record<AppKind, number>;
  /** SIGKILLs of each kind, spread at random over the duration. */
  kills: Record<AppKind, number>;
  /** Times Redis is SIGKILLed and restarted (from its AOF) during the duration. */
  redisRestarts: number;
  /** Upper bound of the random-delay transform's delay, in ms. */
  transformMaxDelayMs: number;
  /** Share of delivery attempts the sinks answer 503 (retried by the sender). */
  sinkErrorRate: number;
  /** How long to wait, after the load and the chaos, for every accepted message to arrive, in ms. */
  drainTimeoutMs: number;
  /** Hard bound of the whole run, in ms: past it the run stops and reports what it has. */
  deadlineMs: number;
  /** Seed of the chaos schedule and of the choice of victims (the timing of the apps is not seeded). */
  seed: number;
  /** Directory for the app logs, the deliveries and the summary; a fresh one under .tmp/chaos by default. */
  outDir: string | undefined;
}

/** Ingest answers in well under a second, so 250 messages a second leaves the 2-core machine room for the chaos. */
const DEFAULT_RATE_PER_S = 250;
const MIN_DURATION_S = 25;

/** The defaults for `messages` messages (50,000 unless told otherwise: the bar). */
export function defaultOptions(messages = 50_000): ChaosOptions {
  const durationS = Math.max(MIN_DURATION_S, Math.round(messages / DEFAULT_RATE_PER_S));
  const kills = Math.max(2, Math.round(messages / 4_000));
  return {
    messages,
    destinations: 8,
    durationMs: durationS * 1000,
    concurrency: 48,
    processes: { ingest: 2, worker: 4, sender: 3 },
    kills: { ingest: kills, worker: kills, sender: kills },
    redisRestarts: messages >= 20_000 ? 3 : 1,
    transformMaxDelayMs: 20,
    sinkErrorRate: 0.01,
    drainTimeoutMs: Math.max(30_000, Math.min(180_000, messages * 2)),
    deadlineMs: durationS * 1000 + 300_000,
    seed: Math.floor(Math.random() * 2 ** 31),
    outDir: undefined,
  };
}

/** Every flag, its environment variable, and what it sets. */
const SETTINGS = {
  messages: { env: 'CHAOS_MESSAGES', help: 'messages to send (default 50000)' },
  duration: {
    env: 'CHAOS_DURATION_S',
    help: 'seconds the load and the chaos last (default messages/250, at least 25)',
  },
  destinations: { env: 'CHAOS_DESTINATIONS', help: 'destinations, one HTTP sink each (default 8)' },
  concurrency: { env: 'CHAOS_CONCURRENCY', help: 'client requests in flight (default 48)' },
  ingests: { env: 'CHAOS_INGESTS', help: 'ingest processes (default 2)' },
  workers: { env: 'CHAOS_WORKERS', help: 'transform-worker processes (default 4)' },
  senders: { env: 'CHAOS_SENDERS', help: 'resequencer-sender processes (default 3)' },
  kills: { env: 'CHAOS_KILLS', help: 'SIGKILLs of each app kind (default messages/4000, at least 2)' },
  'redis-restarts': {
    env: 'CHAOS_REDIS_RESTARTS',
    help: 'Redis SIGKILL+restarts (default 3 from 20000 messages, else 1)',
  },
  'max-delay': { env: 'CHAOS_MAX_DELAY_MS', help: 'largest transform delay in ms (default 20)' },
  'sink-errors': { env: 'CHAOS_SINK_ERROR_RATE', help: 'share of deliveries answered 503 (default 0.01)' },
  drain: { env: 'CHAOS_DRAIN_S', help: 'seconds to wait for the last deliveries (default messages/500, 30..180)' },
  deadline: { env: 'CHAOS_DEADLINE_S', help: 'hard bound of the whole run in seconds (default duration + 300)' },
  seed: { env: 'CHAOS_SEED', help: 'seed of the chaos schedule (default random; printed)' },
  out: { env: 'CHAOS_OUT', help: 'directory for logs and results (default .tmp/chaos/<time>)' },
} as const;

type Setting = keyof typeof SETTINGS;

/** The usage text of `pnpm test:chaos --help`. */
export function usage(): string {
  const lines = Object.entries(SETTINGS).map(([flag, s]) => `  --${flag.padEnd(15)} ${s.env.padEnd(22)} ${s.help}`);
  return ['usage: pnpm test:chaos [--flag value ...]   (or the environment variables)', ...lines].join('\n');
}

/**
 * Reads the options from flags and environment.
 * @throws Error listing every invalid value.
 */
export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): ChaosOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...Object.fromEntries(Object.keys(SETTINGS).map((flag) => [flag, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return 'help';
  const problems: string[] = [];
  const flags = values as Record<string, string | boolean | undefined>;
  const raw = (setting: Setting): string | undefined => {
    const value = flags[setting];
    if (typeof value === 'string') return value;
    const fromEnv = env[SETTINGS[setting].env];
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  };
  const num = (setting: Setting, min: number, max: number, integer = true): number | undefined => {
    const text = raw(setting);
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      problems.push(
        `--${setting} / ${SETTINGS[setting].env}: "${text}" is not ${integer ? 'an integer' : 'a number'} in ${min}..${max}`,
      );
      return undefined;
    }
    return value;
  };

  const options = defaultOptions(num('messages', 1, 10_000_000));
  const duration = num('duration', 5, 86_400);
  if (duration !== undefined) {
    options.durationMs = duration * 1000;
    options.deadlineMs = options.durationMs + 300_000;
  }
  options.destinations = num('destinations', 1, 64) ?? options.destinations;
  options.concurrency = num('concurrency', 1, 1024) ?? options.concurrency;
  options.processes.ingest = num('ingests', 1, 16) ?? options.processes.ingest;
  options.processes.worker = num('workers', 1, 32) ?? options.processes.worker;
  options.processes.sender = num('senders', 1, 16) ?? options.processes.sender;
  const kills = num('kills', 0, 10_000);
  if (kills !== undefined) options.kills = { ingest: kills, worker: kills, sender: kills };
  options.redisRestarts = num('redis-restarts', 0, 1000) ?? options.redisRestarts;
  options.transformMaxDelayMs = num('max-delay', 0, 60_000) ?? options.transformMaxDelayMs;
  options.sinkErrorRate = num('sink-errors', 0, 0.9, false) ?? options.sinkErrorRate;
  const drain = num('drain', 1, 86_400);
  if (drain !== undefined) options.drainTimeoutMs = drain * 1000;
  const deadline = num('deadline', 10, 7 * 86_400);
  if (deadline !== undefined) options.deadlineMs = deadline * 1000;
  options.seed = num('seed', 0, 2 ** 31 - 1) ?? options.seed;
  options.outDir = raw('out') ?? options.outDir;
  if (problems.length > 0) throw new Error(`invalid chaos options:\n  ${problems.join('\n  ')}`);
  return options;
}
