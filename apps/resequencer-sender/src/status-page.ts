/**
 * The live status page on the sender's ops server: `GET /status` (a self-contained HTML page,
 * no framework, no external assets) and `GET /status.json` (what it polls every second). Where
 * ingest tokens are configured, both need one of them, as a Bearer header or `?token=`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OpsRoute } from '@reseq/runtime';
import { STATUS_PAGE_HTML } from './status-page-html.js';
import type { StatusSampler } from './status-sampler.js';

/**
 * Checks a presented token against the configured ones. Both sides are hashed to SHA-256 so
 * `timingSafeEqual` compares equal lengths, and every token is compared (the same scheme as
 * ingest's authenticator, which lives in another app and so cannot be imported).
 */
export class StatusAuth {
  readonly #digests: Buffer[];

  constructor(tokens: Readonly<Record<string, string>>) {
    this.#digests = Object.values(tokens).map(sha256);
  }

  /** Whether any token is configured (if not, the page is open). */
  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  /** Whether `req` may see the page: no tokens configured, or a valid header or `?token=`. */
  allows(req: IncomingMessage): boolean {
    if (!this.enabled) return true;
    const header = req.headers.authorization;
    const fromHeader = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    const fromQuery = new URL(req.url ?? '/', 'http://localhost').searchParams.get('token') ?? undefined;
    const token = fromHeader ?? fromQuery;
    if (token === undefined) return false;
    const digest = sha256(token);
    let ok = false;
    for (const known of this.#digests) ok = timingSafeEqual(digest, known) || ok;
    return ok;
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function unauthorized(res: ServerResponse): void {
  res
    .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
    .end('{"code":"STATUS_UNAUTHORIZED","message":"a valid token is required (Authorization: Bearer or ?token=)"}');
}

/** The `/status` and `/status.json` routes for {@link startOpsServer}'s `routes`. */
export function statusRoutes(sampler: StatusSampler, auth: StatusAuth): Record<string, OpsRoute> {
  return {
    '/status': (req, res) => {
      if (!auth.allows(req)) return unauthorized(res);
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        .end(STATUS_PAGE_HTML);
    },
    '/status.json': (req, res) => {
      if (!auth.allows(req)) return unauthorized(res);
      res
        .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(sampler.snapshot()));
    },
  };
}
