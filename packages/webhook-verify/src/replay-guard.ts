/**
 * An in-memory memory of the `webhook-id`s a receiver has accepted, for the tolerance window:
 * within that window a captured request would still pass {@link verifyWebhook}, so its id is
 * what tells a replay (or reseq's own redelivery) from a new message. One process only; a
 * receiver with several instances de-duplicates in its database instead (a unique key on the id).
 */
import { DEFAULT_TOLERANCE_SECONDS, type VerifiedWebhook } from './verify.js';

/** Options of {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /** The `toleranceSeconds` given to verifyWebhook; default 300. */
  toleranceSeconds?: number;
  /** Most ids remembered; the oldest are forgotten first. Default 100,000. */
  maxEntries?: number;
}

/** Remembers accepted `webhook-id`s until their timestamps fall out of the tolerance window. */
export class ReplayGuard {
  readonly #toleranceMs: number;
  readonly #maxEntries: number;
  /** id → when it may be forgotten (ms); kept in insertion order for cheap expiry. */
  readonly #seen = new Map<string, number>();

  constructor(options: ReplayGuardOptions = {}) {
    this.#toleranceMs = (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS) * 1000;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /**
   * Whether this is the first time the verified webhook's id is seen within the window; true
   * remembers it. false means a duplicate: answer it 2xx without processing it again (reseq
   * sends the same id again when it did not get your 2xx), never process it twice.
   */
  firstSeen(webhook: VerifiedWebhook, now = Date.now()): boolean {
    this.#expire(now);
    const forgetAt = webhook.timestamp * 1000 + this.#toleranceMs;
    const known = this.#seen.get(webhook.id);
    if (known !== undefined) {
      // A later redelivery carries a later timestamp: keep the id until that one expires too.
      this.#seen.delete(webhook.id);
      this.#seen.set(webhook.id, Math.max(known, forgetAt));
      return false;
    }
    this.#seen.set(webhook.id, forgetAt);
    while (this.#seen.size > this.#maxEntries) this.#seen.delete(this.#seen.keys().next().value!);
    return true;
  }

  /** Forgets an id, e.g. when processing it failed and a redelivery should be processed. */
  forget(id: string): void {
    this.#seen.delete(id);
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.#seen.size;
  }

  #expire(now: number): void {
    for (const [id, forgetAt] of this.#seen) {
      // Entries are roughly in expiry order; stop at the first live one.
      if (forgetAt > now) break;
      this.#seen.delete(id);
    }
  }
}
