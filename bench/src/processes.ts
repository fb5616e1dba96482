/**
 * The processes of a run: reseq's apps (`node apps/<app>/dist/main.js`, as the contract starts
 * them) and the baselines' programs (`bench/baselines/main.ts` through the repository's
 * TypeScript loader). Each prints JSON log lines; a process is ready once a line with the
 * expected `msg` appears. Only the last lines are kept, for the report of a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = resolve(import.meta.dirname, '../..');
const KEEP_LINES = 50;

/** A running process of a run. */
export interface BenchProcess {
  /** `ingest`, `worker-2`, `sender`, `front`, `limit`, … */
  label: string;
  pid: number;
  child: ChildProcess;
  /** The line that said it was ready. */
  readyLine: Record<string, unknown>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** The last lines it printed. */
  tail(): string[];
  /** Resolves once `count` lines with this `msg` have appeared since the start (rejects after `timeoutMs`). */
  waitForLogs(msg: string, count: number, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | string>;
}

/** Options of {@link spawnProcess}. */
export interface SpawnOptions {
  label: string;
  /** Arguments after `node`. */
  args: string[];
  env: Record<string, string>;
  /** The `msg` of the line that says the process is ready. */
  readyMsg: string;
  timeoutMs?: number;
}

/** Arguments that run the baselines' program (built by build-baselines.ts) in one of its roles. */
export function baselineProgram(...args: string[]): string[] {
  return ['--enable-source-maps', join(ROOT, 'bench', 'dist', 'baselines', 'main.js'), ...args];
}

/** Arguments that run one of reseq's apps. */
export function reseqApp(app: 'ingest' | 'transform-worker' | 'resequencer-sender'): string[] {
  return [...appNodeArgs(), join(ROOT, 'apps', app, 'dist', 'main.js')];
}

/**
 * Node.js flags for reseq's apps from `BENCH_APP_NODE_ARGS` (space-separated), to profile them
 * during a run: `BENCH_APP_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" pnpm bench …`.
 */
function appNodeArgs(): string[] {
  return (process.env.BENCH_APP_NODE_ARGS ?? '').split(/\s+/).filter((arg) => arg !== '');
}

/** Processes started and not yet exited, SIGKILLed should the harness exit without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts a process and waits until it is ready (SIGKILLs it and throws if it is not in time). */
export async function spawnProcess(options: SpawnOptions): Promise<BenchProcess> {
  const child = spawn(process.execPath, options.args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const exited = once(child, 'exit').then(([code, signal]) => {
    live.delete(child);
    return (code as number | null) ?? (signal as string);
  });
  const lines: string[] = [];
  /** How many lines of each `msg` appeared, and who waits for which count. */
  const seen = new Map<string, number>();
  const waiters = new Set<{ msg: string; count: number; done: () => void }>();
  let onReady: ((line: Record<string, unknown>) => void) | undefined;
  const onLine = (text: string): void => {
    lines.push(text);
    if (lines.length > KEEP_LINES) lines.shift();
    if (!text.startsWith('{')) return;
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return; // Not JSON: kept for the tail only.
    }
    if (typeof line.msg !== 'string') return;
    seen.set(line.msg, (seen.get(line.msg) ?? 0) + 1);
    if (line.msg === options.readyMsg) onReady?.(line);
    for (const waiter of waiters) if (waiter.msg === line.msg && seen.get(line.msg)! >= waiter.count) waiter.done();
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);

  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const readyLine = await new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    onReady = resolvePromise;
    timer = setTimeout(() => reject(new Error(`${options.label}: not ready within ${timeoutMs} ms`)), timeoutMs);
    void exited.then((code) => reject(new Error(`${options.label} exited (${String(code)}) before it was ready`)));
  })
    .catch(async (err: unknown) => {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${(err as Error).message}; last lines:\n${lines.join('\n')}`);
    })
    .finally(() => {
      clearTimeout(timer);
      onReady = undefined;
    });

  return {
    label: options.label,
    pid: child.pid!,
    child,
    readyLine,
    exited,
    tail: () => [...lines],
    waitForLogs(msg, count, waitMs = 30_000) {
      if ((seen.get(msg) ?? 0) >= count) return Promise.resolve();
      return new Promise<void>((resolvePromise, reject) => {
        const waiter = {
          msg,
          count,
          done: () => {
            clearTimeout(waitTimer);
            waiters.delete(waiter);
            resolvePromise();
          },
        };
        const waitTimer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(`${options.label}: ${count} "${msg}" lines not seen within ${waitMs} ms (${seen.get(msg) ?? 0})`),
          );
        }, waitMs);
        waiters.add(waiter);
      });
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(killer);
      }
    },
  };
}

/** A TCP port that was free on 127.0.0.1 a moment ago (never 6379, the shared Redis). */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    server.close();
    await once(server, 'close');
    if (address !== null && typeof address === 'object' && address.port !== 6379) return address.port;
  }
}
