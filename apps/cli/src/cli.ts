/**
 * The operator CLI as a function (`runCli`), the way each app has a factory apart from its
 * `main.ts`: arguments and environment in, output and an exit status out, so tests run it in
 * process. It loads the same config as the apps, connects to the same Redis (failing fast when
 * it cannot), runs one command and disconnects.
 */
import { loadConfig, type ReseqConfig } from '@reseq/config';
import { createLogger } from '@reseq/runtime';
import {
  checkShardLayout,
  connectRedis,
  createRedis,
  RedisTooOldError,
  RedisUnavailableError,
  redisTarget,
  type RedisTarget,
  type ReseqRedis,
  Shards,
} from '@reseq/store';
import { dlqList, formatDeadLetters } from './commands/dlq-list.js';
import { dlqRetry, formatRetry } from './commands/dlq-retry.js';
import { dlqShow, formatDeadLetter } from './commands/dlq-show.js';
import { dlqSkip, formatSkip } from './commands/dlq-skip.js';
import { destinationPause, formatPause } from './commands/destination-pause.js';
import { formatInspect, inspect } from './commands/inspect.js';
import { formatReplay, replay } from './commands/replay.js';
import { formatMigration, formatShards, migrate, shards } from './commands/shards.js';
import { formatStatus, status } from './commands/status.js';
import type { CommandContext } from './context.js';
import { EXIT, RedisUnreachableError, toFailure } from './errors.js';
import { parseCommand, USAGE, type Command } from './parse-args.js';

/** Where the CLI reads and writes. */
export interface CliIo {
  /** The environment (REDIS_URL, RESEQ_PREFIX, RESEQ_CONFIG, ...). */
  env: Record<string, string | undefined>;
  /** Receives the command's output (one call, without the final newline). */
  stdout: (text: string) => void;
  /** Receives the one-line reason of a failure. */
  stderr: (text: string) => void;
  /** How long to wait for Redis before giving up, in ms; default 5000. */
  connectTimeoutMs?: number;
}

/** Default of {@link CliIo.connectTimeoutMs}. */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * Where Redis is, for an error line: host and port (never the credentials), the sentinels, or the
 * cluster's seed nodes.
 */
function describeTarget(target: RedisTarget): string {
  if (target.cluster)
    return `cluster nodes ${target.cluster.nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`;
  if (target.sentinel) {
    const nodes = target.sentinel.nodes.map(({ host, port }) => `${host}:${port}`).join(',');
    return `master "${target.sentinel.name}" of sentinels ${nodes}`;
  }
  try {
    const url = new URL(target.url);
    return `${url.hostname}:${url.port || '6379'}`;
  } catch {
    return 'REDIS_URL';
  }
}

async function connect(config: ReseqConfig, timeoutMs: number): Promise<ReseqRedis> {
  // Logs would mix with the output; the CLI reports failures itself, in one line.
  const logger = createLogger({ app: 'cli', level: 'silent', destination: process.stderr });
  const target = redisTarget(config.env);
  const redis = createRedis({ target, name: 'cli', logger, mode: 'fail-fast' });
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError = err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connectRedis(redis),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return redis;
  } catch (err) {
    // Stop reconnecting: an operator wants an answer, not a CLI that hangs.
    redis.disconnect();
    if (err instanceof RedisTooOldError) throw err;
    throw new RedisUnreachableError(describeTarget(target), timeoutMs, lastError ?? err);
  } finally {
    clearTimeout(timer);
  }
}

async function execute(ctx: CommandContext, command: Exclude<Command, { name: 'help' }>): Promise<string> {
  switch (command.name) {
    case 'status':
      return formatStatus(await status(ctx), command.json);
    case 'dlq-list':
      return formatDeadLetters(await dlqList(ctx, command.destination), command.json);
    case 'dlq-show':
      return formatDeadLetter(await dlqShow(ctx, command.destination, command.sequence), command.json);
    case 'dlq-retry': {
      const outcome = await dlqRetry(ctx, command.destination, command.sequence);
      return formatRetry(command.destination, command.sequence, outcome, command.json);
    }
    case 'dlq-skip': {
      const outcome = await dlqSkip(ctx, command.destination, command.sequence);
      return formatSkip(command.destination, command.sequence, outcome, command.json);
    }
    case 'destination-pause':
    case 'destination-resume': {
      const state = await destinationPause(ctx, command.destination, command.name === 'destination-pause');
      return formatPause(state, command.json);
    }
    case 'inspect':
      return formatInspect(await inspect(ctx), command.json);
    case 'replay':
      return formatReplay(await replay(ctx, command.destination, command.from), command.json);
    case 'shards':
      return formatShards(await shards(ctx), command.json);
    case 'shards-migrate':
      return formatMigration(await migrate(ctx, command.to), command.json);
  }
}

/**
 * Runs one `reseq` command line (`argv` without node and the script).
 * @returns the exit status: 0 done, else one of {@link EXIT}, with its reason written to stderr.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const command = parseCommand(argv);
    if (command.name === 'help') {
      io.stdout(USAGE);
      return EXIT.ok;
    }
    const config = loadConfig(io.env);
    const redis = await connect(config, io.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    try {
      const ctx: CommandContext = {
        redis,
        shards: new Shards(config.env.RESEQ_PREFIX, config.env.RESEQ_SHARDS),
        config,
      };
      // Another RESEQ_SHARDS than the pipeline's would read every destination under the wrong keys.
      await checkShardLayout(redis, ctx.shards, { record: false });
      io.stdout(await execute(ctx, command));
    } catch (err) {
      // A command that failed because the connection went away is Redis's failure, not ours.
      throw redis.status === 'ready' ? err : new RedisUnavailableError(err);
    } finally {
      await redis.quit().catch(() => redis.disconnect());
    }
    return EXIT.ok;
  } catch (err) {
    const failure = toFailure(err);
    io.stderr(failure.line);
    return failure.exitCode;
  }
}
