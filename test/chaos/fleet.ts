/**
 * The app processes of a chaos run, in slots: `ingest-1`, `worker-3`, `sender-2`, ... A slot is
 * one process at a time; the chaos loop SIGKILLs it and starts it again, and a process that dies
 * on its own is restarted too (and reported). Each process ever started is kept for its logs.
 */
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApp, type AppName, type AppProcess } from '../fixtures/apps.js';
import type { AppKind } from './options.js';

const APP_NAMES: Record<AppKind, AppName> = {
  ingest: 'ingest',
  worker: 'transform-worker',
  sender: 'resequencer-sender',
};

/** How long a failed start waits before the next attempt (Redis may be down), in ms. */
const START_RETRY_MS = 300;
/** At the beginning Redis is up: an app that cannot start three times will not (a broken build, say). */
const INITIAL_START_ATTEMPTS = 3;

/** One place for a process of one kind. */
export interface Slot {
  readonly kind: AppKind;
  readonly label: string;
  /** Ingest's fixed HTTP port: a restarted ingest listens where the old one did, as behind a load balancer. */
  readonly port: number | undefined;
  /** Current worker consumer name. */
  consumerName: string | undefined;
  /** The running process; undefined while it is down. */
  app: AppProcess | undefined;
  /** Being killed or started: the chaos loop leaves it alone. */
  busy: boolean;
  generation: number;
}

/** A process that ended without being killed or stopped by the run. */
export interface UnexpectedExit {
  label: string;
  pid: number | undefined;
  code: number | string;
  at: number;
  lastLines: string[];
}

/** One process ever started, for its logs. */
interface Incarnation {
  label: string;
  generation: number;
  app: AppProcess;
  consumerName: string | undefined;
}

/** Everything the apps get besides their per-slot settings. */
export interface FleetOptions {
  env: Record<string, string>;
  counts: Record<AppKind, number>;
  /** Extra environment of the transform workers. */
  workerEnv: Record<string, string>;
  /** Gives up starting a process once this signal aborts (the run's deadline). */
  signal: AbortSignal;
  log: (line: string) => void;
}

/** The app processes of one run. */
export class Fleet {
  readonly slots: Slot[] = [];
  readonly unexpectedExits: UnexpectedExit[] = [];
  /** Worker restarts under the consumer name the killed process had, and under a new one. */
  readonly workerNames = { reused: 0, fresh: 0 };
  readonly #options: FleetOptions;
  readonly #incarnations: Incarnation[] = [];
  /** Processes the run ended on purpose: their exit is expected. */
  readonly #ending = new Set<AppProcess>();
  #stopping = false;

  /** Should the run's process end without cleaning up (an exception, a signal), no app outlives it. */
  readonly #killOnExit = (): void => {
    for (const { app } of this.#incarnations) if (app.child.exitCode === null) app.child.kill('SIGKILL');
  };

  private constructor(options: FleetOptions) {
    this.#options = options;
    process.on('exit', this.#killOnExit);
  }

  /** Creates the slots (finding free ports for ingest) and starts every process. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    for (const kind of ['ingest', 'worker', 'sender'] as const) {
      for (let n = 1; n <= options.counts[kind]; n++) {
        fleet.slots.push({
          kind,
          label: `${kind}-${n}`,
          port: kind === 'ingest' ? await freePort() : undefined,
          consumerName: kind === 'worker' ? `chaos-worker-${n}` : undefined,
          app: undefined,
          busy: false,
          generation: 0,
        });
      }
    }
    try {
      await Promise.all(fleet.slots.map((slot) => fleet.#startSlot(slot, INITIAL_START_ATTEMPTS)));
    } catch (err) {
      await fleet.killAll();
      throw err;
    }
    return fleet;
  }

  /** Ingest URLs of every ingest slot, up or not: a client does not know which one is down. */
  ingestUrls(): string[] {
    return this.slots.filter((s) => s.kind === 'ingest').map((s) => `http://127.0.0.1:${String(s.port)}/v1/messages`);
  }

  /** Slots of a kind whose process is up and not being handled. */
  available(kind: AppKind): Slot[] {
    return this.slots.filter((s) => s.kind === kind && s.app !== undefined && !s.busy);
  }

  /** How many processes of each kind are up. */
  upCounts(): Record<AppKind, number> {
    const count = (kind: AppKind): number => this.slots.filter((s) => s.kind === kind && s.app !== undefined).length;
    return { ingest: count('ingest'), worker: count('worker'), sender: count('sender') };
  }

  /**
   * SIGKILLs the slot's process, waits `downMs`, and starts it again (retrying while Redis is
   * down). A worker comes back under its old consumer name when `reuseName`, else a new one.
   */
  async killAndRestart(slot: Slot, downMs: number, reuseName: boolean): Promise<void> {
    const app = slot.app;
    if (!app || slot.busy) return;
    slot.busy = true;
    try {
      this.#ending.add(app);
      slot.app = undefined;
      await app.kill();
      await sleep(downMs);
      if (slot.kind === 'worker') {
        if (reuseName) this.workerNames.reused++;
        else {
          this.workerNames.fresh++;
          slot.consumerName = `${slot.label.replace('worker', 'chaos-worker')}-g${String(slot.generation + 1)}`;
        }
      }
      await this.#startSlot(slot);
    } finally {
      slot.busy = false;
    }
  }

  /** Sends SIGTERM to every process; returns each one's exit code (0 is a clean stop). */
  async stopAll(): Promise<{ label: string; code: number | string }[]> {
    this.#stopping = true;
    const running = this.slots.filter((s) => s.app !== undefined);
    return Promise.all(
      running.map(async (slot) => {
        const app = slot.app!;
        this.#ending.add(app);
        const timer = setTimeout(() => void app.kill(), 20_000);
        const code = await app.stop();
        clearTimeout(timer);
        slot.app = undefined;
        return { label: slot.label, code };
      }),
    );
  }

  /** SIGKILLs whatever still runs (cleanup after a failure). */
  async killAll(): Promise<void> {
    this.#stopping = true;
    process.off('exit', this.#killOnExit);
    await Promise.all(
      this.#incarnations.map(async ({ app }) => {
        this.#ending.add(app);
        await app.kill();
      }),
    );
  }

  /** Writes each process's log lines (JSON, one per line) to `dir/<slot>-g<generation>-<pid>.log`. */
  async writeLogs(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const { label, generation, app, consumerName } of this.#incarnations) {
      const name = `${label}-g${String(generation)}-${String(app.child.pid ?? 'nopid')}.log`;
      const header = JSON.stringify({ chaos: 'process', label, generation, pid: app.child.pid, consumerName });
      await writeFile(join(dir, name), [header, ...app.logs.map((l) => JSON.stringify(l))].join('\n') + '\n');
    }
  }

  /**
   * Starts the slot's process, trying again while it fails (Redis down), up to `maxAttempts`
   * (then throws its error) or, by default, until the run stops.
   */
  async #startSlot(slot: Slot, maxAttempts = Infinity): Promise<void> {
    const { env, workerEnv, signal, log } = this.#options;
    const extra: Record<string, string> =
      slot.kind === 'ingest'
        ? { HTTP_PORT: String(slot.port) }
        : slot.kind === 'worker'
          ? { ...workerEnv, RESEQ_CONSUMER_NAME: slot.consumerName! }
          : {};
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted || this.#stopping) return;
      try {
        const app = await startApp(APP_NAMES[slot.kind], { env: { ...env, ...extra }, timeoutMs: 30_000 });
        slot.generation++;
        slot.app = app;
        this.#incarnations.push({
          label: slot.label,
          generation: slot.generation,
          app,
          consumerName: slot.consumerName,
        });
        void app.exited.then((code) => this.#onExit(slot, app, code));
        return;
      } catch (err) {
        if (attempt >= maxAttempts) throw err;
        // Redis down or still loading its AOF: the app exits at start; a supervisor starts it again.
        if (attempt % 20 === 0) log(`  ${slot.label}: still failing to start (${attempt} attempts): ${firstLine(err)}`);
        await sleep(START_RETRY_MS);
      }
    }
  }

  #onExit(slot: Slot, app: AppProcess, code: number | string): void {
    if (this.#ending.has(app) || this.#stopping) return;
    this.unexpectedExits.push({
      label: slot.label,
      pid: app.child.pid,
      code,
      at: Date.now(),
      lastLines: app.logs.slice(-20).map((l) => JSON.stringify(l)),
    });
    this.#options.log(
      `  ! ${slot.label} (pid ${String(app.child.pid)}) exited on its own (${String(code)}); restarting it`,
    );
    if (slot.app === app) slot.app = undefined;
    if (slot.busy) return;
    slot.busy = true;
    void this.#startSlot(slot).finally(() => {
      slot.busy = false;
    });
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/** A TCP port that was free on 127.0.0.1 a moment ago (never 6379, the shared Redis). */
async function freePort(): Promise<number> {
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
