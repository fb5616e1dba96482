/**
 * Reads the environment and the RESEQ_CONFIG file (JSON or YAML) and validates both at once,
 * so a bad setup fails at boot listing every problem, not just the first.
 */
import { readFileSync } from 'node:fs';
import { ReseqError } from '@reseq/runtime';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { envSchema, fileSchema, type ReseqConfig } from './schema.js';

/** `CONFIG_INVALID`: the environment or the config file is wrong; `problems` lists each. */
export class ConfigError extends ReseqError {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: string[], cause?: unknown) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, {
      context: { problems },
      cause,
    });
    this.problems = problems;
  }
}

function describe(prefix: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${prefix}${path ? `${path}: ` : ''}${issue.message}`;
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Validates an environment and an already-parsed config file.
 * @throws {ConfigError} listing every problem found.
 */
export function parseConfig(env: Record<string, string | undefined>, file: unknown): ReseqConfig {
  // Empty strings in the environment mean "not set", as shells and compose files produce them.
  const cleanEnv = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const envResult = envSchema.safeParse(cleanEnv);
  const fileResult = fileSchema.safeParse(file ?? {});
  const problems = [
    ...(envResult.success ? [] : describe('env ', envResult.error)),
    ...(fileResult.success ? [] : describe('RESEQ_CONFIG ', fileResult.error)),
  ];
  if (!envResult.success || !fileResult.success) throw new ConfigError(problems);
  const { destinations, sources, ingest, transform, worker, sender } = fileResult.data;
  return deepFreeze({ env: envResult.data, destinations, sources, ingest, transform, worker, sender });
}

/**
 * Loads the configuration of the running process from `process.env` and RESEQ_CONFIG.
 * @throws {ConfigError} when the file is unreadable or anything is invalid.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): ReseqConfig {
  const path = env.RESEQ_CONFIG;
  let file: unknown = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([`RESEQ_CONFIG: cannot read ${path}: ${(err as Error).message}`], err);
    }
    try {
      file = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    } catch (err) {
      throw new ConfigError(
        [`RESEQ_CONFIG: ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(err as Error).message}`],
        err,
      );
    }
  }
  return parseConfig(env, file);
}
