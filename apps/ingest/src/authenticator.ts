/**
 * Ingest authentication (`ingest.tokens`): finds the source a presented token belongs to. Both
 * sides are hashed to SHA-256 first, so `timingSafeEqual` compares equal lengths, and every
 * configured token is compared, so the time taken says nothing about which one nearly matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Resolves tokens to source names. */
export class Authenticator {
  readonly #sources: { source: string; digest: Buffer }[];

  constructor(tokens: Readonly<Record<string, string>>) {
    this.#sources = Object.entries(tokens).map(([source, token]) => ({ source, digest: sha256(token) }));
  }

  /** Whether any token is configured (if not, ingest is open and every sender is `anonymous`). */
  get enabled(): boolean {
    return this.#sources.length > 0;
  }

  /** The source of `token`, or undefined for a missing or unknown token. */
  sourceOf(token: string | undefined): string | undefined {
    if (token === undefined) return undefined;
    const digest = sha256(token);
    let found: string | undefined;
    for (const { source, digest: known } of this.#sources) {
      if (timingSafeEqual(digest, known) && found === undefined) found = source;
    }
    return found;
  }

  /** The source of an `Authorization: Bearer <token>` header value. */
  sourceOfHeader(header: string | undefined): string | undefined {
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    return this.sourceOf(match?.[1]);
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
