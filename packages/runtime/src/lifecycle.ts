/**
 * How every app's `main.ts` runs its factory: start it, stop it gracefully on SIGTERM/SIGINT
 * (exit 0 once it handed back its work), and exit non-zero on a failed start or a crash.
 */
import type { Logger } from 'pino';

/** What an app factory returns. */
export interface RunningApp {
  /** Stops taking new work, finishes or hands back what it holds, releases connections. */
  stop(): Promise<void>;
}

/**
 * Starts an app and wires signals. A second signal while stopping exits at once with 1.
 */
export async function runApp(logger: Logger, start: () => Promise<RunningApp>): Promise<void> {
  let app: RunningApp;
  try {
    app = await start();
  } catch (err) {
    logger.fatal({ err }, 'failed to start');
    logger.flush();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
    return;
  }
  let stopping = false;
  let stopped = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopped) return;
    if (stopping) {
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    app
      .stop()
      .then(() => {
        stopped = true;
        logger.info('stopped');
        logger.flush();
        // Exit explicitly: a stray keep-alive socket must not keep a stopped app alive.
        setTimeout(() => process.exit(0), 50);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'error while stopping');
        logger.flush();
        setTimeout(() => process.exit(1), 50);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    logger.flush();
    process.exit(1);
  });
}
