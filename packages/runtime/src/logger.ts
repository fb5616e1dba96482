/**
 * The one pino root logger of a process. Components get `logger.child({ component })`;
 * nothing imports a global logger. Credentials in Redis URLs and auth headers are redacted.
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

/** Paths that must never reach a log line. */
const REDACT = [
  'redisUrl',
  '*.redisUrl',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'headers.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
];

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
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
