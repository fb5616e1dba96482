/**
 * reseq as a least-privilege Redis user, and over TLS: a private redis-server with an ACL user
 * that may touch only its pipeline's keys and only the commands reseq runs (docs/security.md
 * gives the same ACL line), then a short pipeline end to end and the CLI, first over
 * `redis://reseq:<pw>@`, then over `rediss://` with a CA made here by openssl (where this
 * redis-server is built with TLS; otherwise that test says so and is skipped).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../fixtures/apps.js';
import { startRedis, type TestRedis } from '../fixtures/redis.js';
import { expectDelivered, freePort, Harness, pipelineConfig, range } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

/**
 * The ACL rules of the user reseq connects as: its own keys only, no pub/sub channels, and the
 * command categories its commands and Lua scripts need, without the dangerous ones (FLUSHALL,
 * KEYS, CONFIG, DEBUG, ...) except INFO, which ioredis and the version check read.
 */
export function reseqAclRules(prefix: string, password: string): string[] {
  return [
    'reset',
    'on',
    `>${password}`,
    `~{${prefix}}*`,
    'resetchannels',
    '-@all',
    '+@read',
    '+@write',
    '+@stream',
    '+@scripting',
    '+@transaction',
    '+@connection',
    '-@dangerous',
    '+info',
    // The scripts read Redis's clock (leases, heartbeats).
    '+time',
  ];
}

/**
 * Sends 10 messages through the real apps at `redisUrl`, checks them and `reseq status`, runs
 * `whileRunning`, then stops the apps with SIGTERM.
 */
async function pipelineOver(
  h: Harness,
  redisUrl: string,
  env: Record<string, string> = {},
  whileRunning: () => Promise<void> = async () => {},
): Promise<void> {
  const sink = await h.sink();
  const path = await h.config(pipelineConfig({ billing: { url: sink.url } }));
  const appEnv = { REDIS_URL: redisUrl, ...env };
  const ingest = await h.start('ingest', path, appEnv);
  await h.start('transform-worker', path, appEnv);
  await h.start('resequencer-sender', path, appEnv);
  for (let i = 0; i < 10; i++) await h.send(ingest, { destination: 'billing', payload: { i } });
  await waitFor(() => sink.unique().length === 10, '10 deliveries');
  expectDelivered(sink, range(1, 10));

  const cli = spawn(process.execPath, [join(ROOT, 'apps/cli/dist/main.js'), 'status', '--json'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', RESEQ_PREFIX: h.prefix, RESEQ_CONFIG: path, ...appEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  cli.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  cli.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(cli, 'close')) as [number | null];
  expect(code, stderr).toBe(0);
  const status = JSON.parse(stdout) as { destinations: Record<string, { assigned: number; delivered: number }> };
  expect(status.destinations.billing).toMatchObject({ assigned: 10 });
  await whileRunning();
  // SIGTERM: leases given back, unfinished entries handed back, all as the limited user.
  for (const app of h.apps) expect(await app.stop()).toBe(0);
  // Nothing the apps did in the background (claims, trimming, leases, heartbeats) was refused.
  for (const app of h.apps) expect(JSON.stringify(app.logs)).not.toMatch(/NOPERM|NOAUTH|WRONGPASS/);
}

describe('Redis ACL users and TLS', () => {
  let redis: TestRedis | undefined;
  let h: Harness | undefined;
  let dir: string | undefined;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && h) console.log(h.dumpLogs());
    await h?.cleanup();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    h = undefined;
    redis = undefined;
    dir = undefined;
  });

  it('runs a pipeline and the CLI as an ACL user limited to its keys and commands', async () => {
    redis = await startRedis();
    h = new Harness('acl', redis.url);
    const password = randomBytes(12).toString('hex');
    await h.redis.call('ACL', 'SETUSER', 'reseq', ...reseqAclRules(h.prefix, password));

    // The user really is limited: other keys and dangerous commands are refused.
    const limited = h.client(`redis://reseq:${password}@${redis.host}:${redis.port}`);
    await expect(limited.set('elsewhere', '1')).rejects.toThrow(/NOPERM/);
    await expect(limited.flushall()).rejects.toThrow(/NOPERM/);
    await expect(limited.keys('*')).rejects.toThrow(/NOPERM/);

    await pipelineOver(h, `redis://reseq:${password}@${redis.host}:${redis.port}`);
    // The password never reaches a log line.
    for (const app of h.apps) expect(JSON.stringify(app.logs)).not.toContain(password);
  });

  it('runs a pipeline and the CLI over rediss:// (TLS, CA given by NODE_EXTRA_CA_CERTS) as an ACL user', async (context) => {
    dir = await mkdtemp(join(tmpdir(), 'reseq-tls-'));
    const certs = await makeCertificates(dir);
    const tlsPort = await freePort();
    try {
      redis = await startRedis({
        backend: 'process',
        args: [
          '--tls-port',
          String(tlsPort),
          '--tls-cert-file',
          certs.cert,
          '--tls-key-file',
          certs.key,
          '--tls-ca-cert-file',
          certs.ca,
          '--tls-auth-clients',
          'no',
        ],
      });
    } catch (err) {
      // Debian's redis-server 7 is built with TLS; a build without it refuses --tls-port.
      if (/tls|TLS/.test(String(err)))
        context.skip(`this redis-server has no TLS support: ${String(err).slice(0, 200)}`);
      throw err;
    }
    h = new Harness('tls', redis.url);
    const password = randomBytes(12).toString('hex');
    await h.redis.call('ACL', 'SETUSER', 'reseq', ...reseqAclRules(h.prefix, password));
    const url = `rediss://reseq:${password}@127.0.0.1:${tlsPort}`;

    await pipelineOver(h, url, { NODE_EXTRA_CA_CERTS: certs.ca }, async () => {
      // Every app connection came in on the TLS port, as the ACL user.
      const clients = String(await h!.redis.call('CLIENT', 'LIST'));
      const reseqLines = clients.split('\n').filter((line) => /name=reseq:/.test(line));
      expect(reseqLines.length).toBeGreaterThanOrEqual(5);
      for (const line of reseqLines) {
        expect(line).toMatch(/ user=reseq /);
        expect(line).toContain(`laddr=127.0.0.1:${tlsPort} `);
      }
    });
    for (const app of h.apps) expect(JSON.stringify(app.logs)).not.toContain(password);

    // Without the CA, TLS refuses the server's certificate: no silent plain-text fallback.
    const untrusted = h.client(url);
    untrusted.options.retryStrategy = () => null;
    await expect(untrusted.ping()).rejects.toThrow();
  });
});

/** A throwaway CA and a server certificate for 127.0.0.1 signed by it (EC P-256, one day). */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const file = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '1',
    '-subj',
    '/CN=reseq test CA',
  ]);
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.crt'),
    '-days',
    '1',
    '-extfile',
    file('san.ext'),
  ]);
  return { ca: file('ca.crt'), cert: file('server.crt'), key: file('server.key') };
}
