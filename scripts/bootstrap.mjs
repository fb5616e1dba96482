#!/usr/bin/env node
// Gets a checkout ready for `npm test` and `npm run demo`: makes sure pnpm is there, installs
// the workspace (skipped when node_modules is newer than the lockfile) and builds it (tsc -b is
// incremental, so a repeat run is quick). Plain Node, no dependencies: it runs before any exist.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Corepack's signature check fails against this machine's registry mirror; harmless elsewhere.
const env = { ...process.env, COREPACK_INTEGRITY_KEYS: '0' };

const log = (message) => console.log(`[bootstrap] ${message}`);

function fail(step, detail) {
  console.error(`[bootstrap] step "${step}" failed${detail ? `: ${detail}` : ''}`);
  process.exit(1);
}

/** Runs a command in the repo root; `quiet` swallows its output (for probes). */
function run(command, args, { quiet = false } = {}) {
  const result = spawnSync(command, args, { cwd: root, env, stdio: quiet ? 'ignore' : 'inherit' });
  return result.error === undefined && result.status === 0;
}

/** Runs one named step, timing it; exits with the step's name if it fails. */
function step(name, command, args) {
  const started = Date.now();
  log(`${name}: ${[command, ...args].join(' ')}`);
  if (!run(command, args)) fail(name, `\`${[command, ...args].join(' ')}\` exited non-zero`);
  log(`${name}: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

/** The command that runs pnpm here: the one on PATH, one npm installs, or npx as a last resort. */
function findPnpm() {
  if (run('pnpm', ['--version'], { quiet: true })) return ['pnpm'];
  log('pnpm not found: npm i -g pnpm@10');
  if (run('npm', ['i', '-g', 'pnpm@10']) && run('pnpm', ['--version'], { quiet: true })) return ['pnpm'];
  log('global install failed: falling back to npx --yes pnpm@10');
  if (run('npx', ['--yes', 'pnpm@10', '--version'], { quiet: true })) return ['npx', '--yes', 'pnpm@10'];
  return fail('pnpm', 'could not find or install pnpm 10 (try `npm i -g pnpm@10`)');
}

function mtimeMs(path) {
  try {
    return statSync(join(root, path)).mtimeMs;
  } catch {
    return undefined;
  }
}

const [pnpm, ...pnpmArgs] = findPnpm();

const installed = mtimeMs('node_modules/.modules.yaml');
const lock = mtimeMs('pnpm-lock.yaml');
if (installed !== undefined && lock !== undefined && installed > lock) {
  log('install: node_modules is newer than pnpm-lock.yaml, skipped');
} else {
  step('install', pnpm, [...pnpmArgs, 'install', '--frozen-lockfile']);
}

step('build', pnpm, [...pnpmArgs, 'build']);
