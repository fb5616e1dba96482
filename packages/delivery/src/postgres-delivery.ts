/**
 * PostgreSQL delivery: each message becomes one row of the destination's table, exactly once.
 * The rows and the destination's delivered position are written in one transaction, which
 * locks the position row first and inserts only the rows above it, so a redelivery (a sender
 * that crashed between PostgreSQL's commit and Redis's advance) inserts nothing and succeeds.
 * Sends queued while a transaction runs go together into the next one (up to `window` rows).
 */
import type { PostgresDestinationConfig } from '@reseq/config';
import pg from 'pg';
import type { Delivery, DeliveryOutcome, DeliveryRequest } from './delivery.js';

/** A send waiting for its transaction. */
interface PendingSend {
  request: DeliveryRequest;
  mayWrite: (() => boolean) | undefined;
  signal: AbortSignal | undefined;
  resolve: (outcome: DeliveryOutcome) => void;
}

/** What one transaction came to, per send of its batch, in order. */
type BatchOutcome = DeliveryOutcome[];

/**
 * SQLSTATE classes that a row itself causes (its payload, a clash with a row someone else
 * wrote): retrying the same row cannot help, so it becomes a dead letter. Everything else
 * (connection lost, server shutting down, timeouts, locks, a missing table) is retried.
 */
const PERMANENT_CLASSES = new Set(['22', '23', '54']);

/** The SQLSTATE of a `pg` error, where it has one. */
function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Whether a failed insert is the rows' fault (see {@link PERMANENT_CLASSES}). */
function isRowError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && PERMANENT_CLASSES.has(state.slice(0, 2));
}

function describe(err: unknown): string {
  const state = sqlState(err);
  const message = err instanceof Error ? err.message : String(err);
  return state ? `PostgreSQL ${state}: ${message}` : message;
}

/** `schema.table` as quoted identifiers (the config pattern already allows only safe names). */
export function quoteTable(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join('.');
}

/** Delivers to one PostgreSQL table. */
export class PostgresDelivery implements Delivery {
  readonly window: number;
  readonly #config: PostgresDestinationConfig;
  readonly #table: string;
  readonly #positions: string;
  readonly #queue: PendingSend[] = [];
  #client: pg.Client | undefined;
  /** Whether the tables and the position row are known to exist on the current connection. */
  #ready = false;
  #running = false;
  #closed = false;
  /**
   * After a retryable failure, the first sequence that failed: later sequences are refused until
   * the lane starts again at or below it, so no row is ever written above a hole.
   */
  #restartAt: number | undefined;

  constructor(config: PostgresDestinationConfig) {
    this.#config = config;
    this.window = config.window;
    this.#table = quoteTable(config.table);
    this.#positions = quoteTable(config.positionsTable);
  }

  /**
   * Queues one row and resolves once the transaction holding it committed (or found it already
   * written), or failed: retryable while PostgreSQL cannot be reached or the transaction failed
   * for another row, permanent for a row PostgreSQL refuses (for example `\u0000` in jsonb).
   */
  send(request: DeliveryRequest, signal?: AbortSignal, mayWrite?: () => boolean): Promise<DeliveryOutcome> {
    return new Promise((resolve) => {
      if (this.#closed) return resolve({ ok: false, retryable: true, error: 'delivery closed' });
      if (signal?.aborted) return resolve({ ok: false, retryable: true, error: 'aborted' });
      if (this.#restartAt !== undefined) {
        if (request.sequence > this.#restartAt)
          return resolve({ ok: false, retryable: true, error: `waiting for a restart at ${this.#restartAt}` });
        this.#restartAt = undefined;
      }
      this.#queue.push({ request, mayWrite, signal, resolve });
      if (!this.#running) void this.#drain();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failQueued('delivery closed');
    await this.#dropClient();
  }

  /** Runs transactions while sends are waiting, one at a time, in order. */
  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.window);
        const outcomes = await this.#commitBatch(batch);
        batch.forEach((send, i) => send.resolve(outcomes[i]!));
        const failed = outcomes.findIndex((o) => !o.ok);
        if (failed >= 0) {
          // Nothing behind a failure may be written before the lane starts again from it. A
          // row refused for good is the exception: the lane dead-letters it and may go past it.
          const first = outcomes[failed]!;
          if (!first.ok && first.retryable) this.#restartAt = batch[failed]!.request.sequence;
          this.#failQueued('an earlier row failed');
        }
      }
    } finally {
      this.#running = false;
    }
  }

  #failQueued(error: string): void {
    for (const send of this.#queue.splice(0)) send.resolve({ ok: false, retryable: true, error });
  }

  /** One transaction for the batch; on a row error, finds the row by writing them one by one. */
  async #commitBatch(batch: PendingSend[]): Promise<BatchOutcome> {
    const retry = (error: string): BatchOutcome => batch.map(() => ({ ok: false, retryable: true, error }));
    if (batch.some((send) => send.signal?.aborted)) return retry('aborted');
    try {
      await this.#transaction(batch);
      return batch.map(() => ({ ok: true }));
    } catch (err) {
      if (!isRowError(err) || batch.length === 1) return this.#failure(err, batch.length);
    }
    const outcomes: BatchOutcome = [];
    for (const send of batch) {
      if (outcomes.some((o) => !o.ok)) {
        outcomes.push({ ok: false, retryable: true, error: 'an earlier row failed' });
        continue;
      }
      try {
        await this.#transaction([send]);
        outcomes.push({ ok: true });
      } catch (err) {
        outcomes.push(this.#failure(err, 1)[0]!);
      }
    }
    return outcomes;
  }

  #failure(err: unknown, count: number): BatchOutcome {
    const permanent = isRowError(err);
    // A lost connection (or one in an unknown state) is dropped; the next attempt opens another.
    if (!permanent) void this.#dropClient();
    const error = describe(err);
    return Array.from({ length: count }, (): DeliveryOutcome => ({ ok: false, retryable: !permanent, error }));
  }

  /**
   * Locks the position row, inserts the rows above it (in sequence order), moves the position
   * to the last of them, commits. Throws whatever PostgreSQL or the connection throws.
   */
  async #transaction(batch: PendingSend[]): Promise<void> {
    let client: pg.Client;
    try {
      client = await this.#connect();
    } catch (err) {
      // Setting up (even a clash of two senders creating the same table) is always retried.
      throw new Error(`cannot set up PostgreSQL: ${describe(err)}`, { cause: err });
    }
    const destination = batch[0]!.request.destination;
    await client.query('BEGIN');
    try {
      // The position row exists before it is locked, so two senders always queue on it.
      await client.query(
        `INSERT INTO ${this.#positions} (destination, delivered) VALUES ($1, 0) ON CONFLICT (destination) DO NOTHING`,
        [destination],
      );
      const locked = await client.query<{ delivered: string }>(
        `SELECT delivered FROM ${this.#positions} WHERE destination = $1 FOR UPDATE`,
        [destination],
      );
      const delivered = Number(locked.rows[0]?.delivered ?? 0);
      const rows = batch.map((s) => s.request).filter((r) => r.sequence > delivered);
      if (rows.length === 0) {
        await client.query('ROLLBACK');
        return;
      }
      await client.query(
        `INSERT INTO ${this.#table} (sequence, message_id, payload)
         SELECT s, m, p::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[]) AS r(s, m, p) ORDER BY s`,
        [rows.map((r) => r.sequence), rows.map((r) => r.messageId), rows.map((r) => r.payload)],
      );
      await client.query(`UPDATE ${this.#positions} SET delivered = $2 WHERE destination = $1`, [
        destination,
        rows.at(-1)!.sequence,
      ]);
      // The lease check at the last moment: a sender that lost its lease commits nothing.
      if (batch.some((s) => s.mayWrite && !s.mayWrite())) throw new Error('not sent: mayWrite said no');
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** The connection, opened (with the tables created if missing) where there is none. */
  async #connect(): Promise<pg.Client> {
    if (this.#client && this.#ready) return this.#client;
    await this.#dropClient();
    const { timeoutMs } = this.#config;
    const client = new pg.Client({
      connectionString: this.#config.url,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      keepAlive: true,
      application_name: 'reseq-sender',
    });
    // An idle connection that breaks emits 'error'; the next attempt finds it gone.
    client.on('error', () => {
      if (this.#client === client) void this.#dropClient();
    });
    this.#client = client;
    await client.connect();
    const schemas = [this.#config.table, this.#config.positionsTable]
      .filter((name) => name.includes('.'))
      .map((name) => quoteTable(name.split('.')[0]!));
    for (const schema of new Set(schemas)) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${this.#table} (
         sequence bigint PRIMARY KEY,
         message_id text NOT NULL,
         payload jsonb NOT NULL,
         delivered_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${this.#positions} (destination text PRIMARY KEY, delivered bigint NOT NULL)`,
    );
    this.#ready = true;
    return client;
  }

  async #dropClient(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#ready = false;
    if (client) await client.end().catch(() => undefined);
  }
}
