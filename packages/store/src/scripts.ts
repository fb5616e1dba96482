/**
 * Loads the Lua scripts in `../lua` and defines them on a connection under versioned names
 * (`reseq_v4_<name>`), so two versions can share a Redis during a rolling upgrade. ioredis
 * sends EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart or failover), for
 * single calls and pipelines alike.
 */
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';

/**
 * Bumped whenever any script's KEYS, ARGV or reply changes (v3: `advance` takes the history
 * streams and lengths; `replay-request`, `replay-step` and `status-age` are new; v4: `advance`
 * takes the result streams and the entries to delete from them).
 */
export const SCRIPT_VERSION = 'v4';

/** Every script, by file name (without `.lua`). */
export const SCRIPT_NAMES = [
  'ingest',
  'complete',
  'buffer',
  'advance',
  'lease-acquire',
  'lease-renew',
  'lease-release',
  'sender-heartbeat',
  'dead-letter',
  'block',
  'dlq-retry',
  'dlq-skip',
  'replay-request',
  'replay-step',
  'status-age',
  'hedge-poll',
  'forget-consumers',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

const LUA_DIR = new URL('../lua/', import.meta.url);

/** The script sources, read once per process. */
const SOURCES: Readonly<Record<ScriptName, string>> = Object.fromEntries(
  SCRIPT_NAMES.map((name) => [name, readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8')]),
) as Record<ScriptName, string>;

/** The command name a script is defined under. */
export function commandName(name: ScriptName): string {
  return `reseq_${SCRIPT_VERSION}_${name.replace(/-/g, '_')}`;
}

declare const scriptsDefined: unique symbol;
/** A connection with reseq's scripts defined on it. */
export type ReseqRedis = Redis & { readonly [scriptsDefined]: true };

/** Defines every script on a connection (lazily loaded by the first EVALSHA). */
export function defineScripts(redis: Redis): ReseqRedis {
  for (const name of SCRIPT_NAMES) {
    // Batch scripts take a variable number of keys: numkeys is passed on each call.
    redis.defineCommand(commandName(name), { lua: SOURCES[name] });
  }
  return redis as ReseqRedis;
}

type ScriptCall = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<unknown>;

/** Runs a script with its keys and arguments. */
export function runScript(
  redis: ReseqRedis,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const call = (redis as unknown as Record<string, ScriptCall>)[commandName(name)];
  if (!call) throw new Error(`script ${name} is not defined on this connection`);
  return call.call(redis, keys.length, ...keys, ...args);
}

/** Queues a script call on a pipeline or MULTI. */
export function queueScript(
  pipeline: ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): ChainableCommander {
  const call = (pipeline as unknown as Record<string, (...a: (string | number)[]) => ChainableCommander>)[
    commandName(name)
  ];
  if (!call) throw new Error(`script ${name} is not defined on this pipeline`);
  return call.call(pipeline, keys.length, ...keys, ...args);
}

/**
 * Queues a script call as a plain `EVAL` of its source. For pipelines whose order matters
 * (a write followed by WAIT): ioredis would resend an `EVALSHA` that met NOSCRIPT outside the
 * pipeline, after the commands that followed it.
 */
export function queueScriptSource(
  pipeline: ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): ChainableCommander {
  return pipeline.eval(SOURCES[name], keys.length, ...keys, ...args);
}
