/**
 * The ops endpoints every app serves on METRICS_PORT: `/metrics` (Prometheus text),
 * `/healthz` (the process is alive) and `/readyz` (200 only while every readiness check
 * passes, 503 with the failing checks otherwise).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A named check; returns true when the app can do its work. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

/** An extra route of the ops server (e.g. the sender's `/status` page); answers GETs of one path. */
export type OpsRoute = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Options of {@link startOpsServer}. */
export interface OpsServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  /** Extra routes by exact path (without the query string); default none. */
  routes?: Record<string, OpsRoute>;
}

/** A started ops server. */
export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** Evaluates the readiness checks; the result is what `/readyz` answers. */
export async function evaluateReadiness(
  checks: Record<string, ReadinessCheck>,
): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
  const results: Record<string, boolean> = {};
  for (const [name, check] of Object.entries(checks)) {
    try {
      results[name] = await check();
    } catch {
      results[name] = false;
    }
  }
  return { ready: Object.values(results).every(Boolean), checks: results };
}

/** Starts the ops server; resolves once it listens. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const route = options.routes?.[path];
      if (route !== undefined && Object.hasOwn(options.routes ?? {}, path)) {
        await route(req, res);
      } else if (path === '/metrics') {
        const body = await options.registry.metrics();
        res.writeHead(200, { 'content-type': options.registry.contentType }).end(body);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      } else if (path === '/readyz') {
        const result = await evaluateReadiness(options.readiness);
        res
          .writeHead(result.ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: result.ready ? 'ready' : 'not ready', checks: result.checks }));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"NOT_FOUND","message":"not found"}');
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
