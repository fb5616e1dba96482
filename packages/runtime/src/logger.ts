/**
 * The one pino root logger of a process. Components get `logger.child({ component })`;
 * nothing imports a global logger. Secrets (webhook secrets, ingest tokens, passwords, auth
 * headers) are redacted wherever a config-like object puts them; URLs keep all but their password.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name; default `info`. */
  level?: string;
  /** Name of the app, logged as `app` on every line. */
  app: string;
  /** Where to write; default stdout. Tests pass a stream to assert on parsed lines. */
  destination?: NodeJS.WritableStream;
}

/** Paths that must never reach a log line (URLs among them keep everything but their password). */
const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'sentinelPassword',
  '*.sentinelPassword',
  'REDIS_SENTINEL_PASSWORD',
  '*.REDIS_SENTINEL_PASSWORD',
  '*.*.REDIS_SENTINEL_PASSWORD',
  // Webhook secrets of destinations, down to a whole config (`config.destinations.<name>.secret`).
  'secret',
  '*.secret',
  '*.*.secret',
  '*.*.*.secret',
  'headers.authorization',
  'headers.Authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.*.headers.authorization',
  '*.*.headers.Authorization',
  // A destination's extra headers exist to carry the receiver's credentials.
  'destinations.*.headers',
  '*.destinations.*.headers',
  // URLs: logged with the password masked (censor below), wherever one sits.
  ...['url', 'redisUrl', 'REDIS_URL', 'redis'].flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]),
  'sources[*].redis',
  '*.sources[*].redis',
  // Ingest tokens (config `ingest.tokens`, a TCP `{"auth": ...}` line).
  'tokens',
  '*.tokens',
  'token',
  '*.token',
  '*.*.tokens',
  'auth',
  '*.auth',
];

/** Keys whose values are URLs: their password is masked, the rest stays readable. */
const URL_KEYS = new Set(['url', 'redisUrl', 'REDIS_URL', 'redis']);

const CENSOR = '[redacted]';

/**
 * `url` with its password (and a user-only credential such as `redis://:token@`) replaced by
 * `[redacted]`; anything that is not such a URL comes back unchanged.
 */
export function maskUrlPassword(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i.exec(url);
  if (!match) return url;
  const userinfo = match[2]!;
  const colon = userinfo.indexOf(':');
  const masked = colon < 0 ? CENSOR : `${userinfo.slice(0, colon)}:${CENSOR}`;
  return `${match[1]}${masked}@${url.slice(match[0].length)}`;
}

function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1];
  if (key !== undefined && URL_KEYS.has(key)) return typeof value === 'string' ? maskUrlPassword(value) : CENSOR;
  return CENSOR;
}

/** Creates the root logger of an app. */
export function createLogger(options: LoggerOptions): Logger {
  // An invalid level must not crash before the config check can report it as CONFIG_INVALID.
  const level =
    options.level && options.level in pino.levels.values
      ? options.level
      : options.level === 'silent'
        ? 'silent'
        : 'info';
  return pino(
    {
      level,
      base: { app: options.app, pid: process.pid },
      redact: { paths: REDACT, censor },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

/**
 * `parent.child(bindings)`, made on first use. pino runs a child's bindings through the
 * redaction rules when it makes the child, which costs more than a fast request or transform
 * does, while most of them never log.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings));
  return new Proxy(parent, {
    get(_target, property) {
      if (child) {
        const value: unknown = Reflect.get(child, property, child);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(child) : value;
      }
      // Until something logs, read the parent's fields (the child would have the same) and hand
      // out methods that make the child when called (fastify checks them on every request).
      const value: unknown = Reflect.get(parent, property, parent);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown =>
        (Reflect.get(real(), property) as (...a: unknown[]) => unknown).apply(real(), args);
    },
    set: (_target, property, value) => Reflect.set(real(), property, value),
    has: (_target, property) => Reflect.has(child ?? parent, property),
  });
}
