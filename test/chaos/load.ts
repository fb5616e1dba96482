/**
 * The chaos run's client: sends messages to the ingest instances over HTTP at an even pace, each
 * with its own `id`, and retries 429, 503, lost connections and timeouts with the same id on the
 * next instance until one answers 202, as the contract asks of a client. It records what each
 * 202 answered: per destination, sequence -> message.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** What was accepted for one destination. */
export interface DestinationLedger {
  /** sequence -> message index, from the 202 answers. */
  readonly bySequence: Map<number, number>;
  /** sequence -> when its 202 arrived (ms since the epoch). */
  readonly acceptedAt: Map<number, number>;
}

/** Counters of the client's requests. */
export interface LoadStats {
  requests: number;
  accepted: number;
  retries: { status429: number; status503: number; connection: number; timeout: number; other5xx: number };
  /** Answers the contract calls final (4xx other than 429): the message was given up. */
  rejected: { index: number; status: number; body: string }[];
  /** A 202 that contradicts another (a sequence given to two messages, or wrong destinations). */
  inconsistent: string[];
  /** Messages still not accepted when the run's deadline passed. */
  unsent: number;
}

/** Options of {@link LoadGenerator}. */
export interface LoadOptions {
  messages: number;
  destinations: readonly string[];
  durationMs: number;
  concurrency: number;
  ingestUrls: readonly string[];
  signal: AbortSignal;
}

/** Per-request timeout: an ingest that was SIGKILLed mid-request leaves a connection hanging at worst this long. */
const REQUEST_TIMEOUT_MS = 5_000;

/** The message ids and routes of a run; the same on every retry. */
export function messageId(index: number): string {
  return `m-${String(index)}`;
}

/** Every message goes to one destination; every fifth also to a second one. */
export function messageTargets(index: number, destinations: readonly string[]): string[] {
  const n = destinations.length;
  const first = destinations[index % n]!;
  if (n < 2 || index % 5 !== 0) return [first];
  return [first, destinations[(index + 3) % n === index % n ? (index + 1) % n : (index + 3) % n]!];
}

/** The payload a message carries (the transform adds `transformed`, `destination`, `sequence`). */
export function messagePayload(index: number): { i: number; note: string } {
  return { i: index, note: `chaos message ${String(index)}` };
}

/** The client side of a chaos run. */
export class LoadGenerator {
  readonly ledgers = new Map<string, DestinationLedger>();
  readonly stats: LoadStats = {
    requests: 0,
    accepted: 0,
    retries: { status429: 0, status503: 0, connection: 0, timeout: 0, other5xx: 0 },
    rejected: [],
    inconsistent: [],
    unsent: 0,
  };
  readonly #options: LoadOptions;
  #next = 0;
  #instance = 0;

  constructor(options: LoadOptions) {
    this.#options = options;
    for (const d of options.destinations) this.ledgers.set(d, { bySequence: new Map(), acceptedAt: new Map() });
  }

  /** Messages sent so far (each accepted, rejected, or still being retried). */
  get started(): number {
    return this.#next;
  }

  /** Sends every message; resolves once each was accepted or given up, or the signal aborted. */
  async run(): Promise<void> {
    const started = Date.now();
    const { messages, durationMs, concurrency, signal } = this.#options;
    const gap = durationMs / messages;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (this.#next < messages && !signal.aborted) {
          const index = this.#next++;
          const due = started + index * gap;
          if (due > Date.now()) await sleep(due - Date.now());
          await this.#send(index);
        }
      }),
    );
    this.stats.unsent = messages - this.stats.accepted - this.stats.rejected.length;
  }

  async #send(index: number): Promise<void> {
    const { destinations, ingestUrls, signal } = this.#options;
    const targets = messageTargets(index, destinations);
    const body = JSON.stringify({ id: messageId(index), destinations: targets, payload: messagePayload(index) });
    const retries = this.stats.retries;
    while (!signal.aborted) {
      const url = ingestUrls[this.#instance++ % ingestUrls.length]!;
      this.stats.requests++;
      let status: number;
      let text: string;
      let retryAfterMs = 0;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        status = response.status;
        text = await response.text();
        retryAfterMs = Number(response.headers.get('retry-after') ?? 0) * 1000;
      } catch (err) {
        // A killed instance: refused, reset, or no answer. The write may have happened: the
        // retry with the same id finds out (one delivery, the same sequences).
        if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) retries.timeout++;
        else retries.connection++;
        await sleep(50 + Math.random() * 100);
        continue;
      }
      if (status === 202) {
        this.#record(index, targets, text);
        return;
      }
      if (status === 429 || status === 503) {
        if (status === 429) retries.status429++;
        else retries.status503++;
        // Retry-After is 1 s; the other instance may answer sooner, so wait a fraction of it.
        await sleep(Math.min(Number.isFinite(retryAfterMs) ? retryAfterMs : 1000, 1000) / 4 + Math.random() * 100);
        continue;
      }
      if (status >= 500) {
        // Not a status the contract names as retryable; a careful client retries it with its id
        // anyway (safe by the contract's de-duplication), and the run reports it.
        retries.other5xx++;
        if (retries.other5xx <= 5)
          this.stats.inconsistent.push(`message ${String(index)}: HTTP ${String(status)} ${text.slice(0, 200)}`);
        await sleep(200);
        continue;
      }
      this.stats.rejected.push({ index, status, body: text.slice(0, 300) });
      return;
    }
  }

  #record(index: number, targets: readonly string[], text: string): void {
    const now = Date.now();
    let answer: { id?: unknown; sequences?: Record<string, unknown> };
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      this.stats.inconsistent.push(`message ${String(index)}: 202 with a body that is not JSON: ${text.slice(0, 200)}`);
      return;
    }
    const sequences = answer.sequences ?? {};
    if (answer.id !== messageId(index)) {
      this.stats.inconsistent.push(`message ${String(index)}: 202 answered id ${JSON.stringify(answer.id)}`);
    }
    const named = Object.keys(sequences).sort();
    if (named.join(',') !== [...targets].sort().join(',')) {
      this.stats.inconsistent.push(
        `message ${String(index)}: 202 named ${named.join(',')}, sent to ${targets.join(',')}`,
      );
    }
    for (const [destination, value] of Object.entries(sequences)) {
      const ledger = this.ledgers.get(destination);
      const sequence = Number(value);
      if (!ledger || !Number.isInteger(sequence) || sequence < 1) continue;
      const holder = ledger.bySequence.get(sequence);
      if (holder !== undefined && holder !== index) {
        this.stats.inconsistent.push(
          `${destination} sequence ${String(sequence)} answered to messages ${String(holder)} and ${String(index)}`,
        );
        continue;
      }
      ledger.bySequence.set(sequence, index);
      ledger.acceptedAt.set(sequence, now);
    }
    this.stats.accepted++;
  }
}
