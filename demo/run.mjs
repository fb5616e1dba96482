// The reseq demo: the seed's scenario at a glance. One message every 250 ms, a transform that
// takes ~750 ms, three workers, three destinations. It prints each delivery as it arrives and
// checks that every destination gets its messages in arrival order, with latency staying near
// 750 ms where sequential processing would fall further behind with every message.
//
//   npm run demo                      (builds first; see README)
//   DEMO_SECONDS=60 npm run demo      (run longer)
//   REDIS_URL=redis://host:6379 npm run demo
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.DEMO_SECONDS ?? 20);
const INTERVAL_MS = 250;
const TRANSFORM_MS = 750;
const DESTINATIONS = ['billing', 'ledger', 'audit'];
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const dim = (t) => paint(2, t);
const green = (t) => paint(32, t);
const red = (t) => paint(31, t);
const bold = (t) => paint(1, t);
const LANE_COLOR = { billing: 36, ledger: 35, audit: 33 };

const cleanups = [];
async function cleanup() {
  while (cleanups.length > 0)
    await cleanups
      .pop()()
      .catch(() => {});
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function ping(url) {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** REDIS_URL if given; else 127.0.0.1:6379 if it answers; else a redis-server of our own. */
async function findRedis() {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  if (await ping('redis://127.0.0.1:6379')) return 'redis://127.0.0.1:6379';
  if (spawnSync('redis-server', ['--version']).error) {
    console.error(
      red('No Redis answers on 127.0.0.1:6379 and there is no redis-server on PATH.') +
        '\nGet one with `sudo apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS),' +
        '\nor `docker run -p 6379:6379 redis:7`, or point REDIS_URL at a Redis 7 server.',
    );
    process.exit(1);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'reseq-demo-redis-'));
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], {
    stdio: 'ignore',
  });
  cleanups.push(async () => {
    server.kill('SIGTERM');
    await once(server, 'exit');
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await ping(url)); i++) await sleep(50);
  console.log(dim(`started a temporary redis-server on port ${port}`));
  return url;
}

function startSink(name, onDelivery) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      onDelivery(name, Number(req.headers['reseq-sequence']), req.headers['idempotency-key'], JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  return new Promise((resolveSink) =>
    server.listen(0, '127.0.0.1', () => {
      cleanups.push(() => new Promise((r) => server.close(r)));
      resolveSink(`http://127.0.0.1:${server.address().port}/hook`);
    }),
  );
}

function startApp(name, env) {
  const child = spawn(process.execPath, [join(ROOT, 'apps', name, 'dist', 'main.js')], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', TCP_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => code ?? signal);
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  return { name, child, exited };
}

async function waitForHttp(url) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    await sleep(50);
  }
  throw new Error(`${url} did not come up`);
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function main() {
  const redisUrl = await findRedis();
  const prefix = `reseq-demo-${process.pid}`;
  const received = Object.fromEntries(DESTINATIONS.map((d) => [d, []]));
  const sent = new Map(); // message number -> accept time
  const latencies = [];
  const startedAt = Date.now();
  let orderBroken = false;
  let duplicates = 0;
  const seenKeys = new Set();

  const onDelivery = (destination, sequence, key, body) => {
    if (seenKeys.has(key)) return void duplicates++;
    seenKeys.add(key);
    const list = received[destination];
    const expected = (list.at(-1)?.sequence ?? 0) + 1;
    if (sequence !== expected) orderBroken = true;
    list.push({ sequence, n: body.n });
    const acceptedAt = sent.get(body.n);
    const latency = Date.now() - acceptedAt;
    latencies.push(latency);
    // Sequential processing would finish message n at (n + 1) * 750 ms after the start.
    const sequential = (body.n + 1) * TRANSFORM_MS - body.n * INTERVAL_MS;
    const lane = paint(LANE_COLOR[destination], destination.padEnd(7));
    const ok = sequence === expected ? green('in order') : red(`OUT OF ORDER (expected #${expected})`);
    console.log(
      `${dim(((Date.now() - startedAt) / 1000).toFixed(2).padStart(6) + 's')}  ${lane} #${String(sequence).padEnd(4)}` +
        ` message ${String(body.n).padEnd(4)} by ${String(body.enrichedBy).padEnd(9)} ${ok}  latency ${bold(String(latency).padStart(4) + ' ms')}` +
        dim(`   sequential would be ${String(sequential).padStart(5)} ms`),
    );
  };

  const urls = {};
  for (const d of DESTINATIONS) urls[d] = await startSink(d, onDelivery);
  const configDir = mkdtempSync(join(tmpdir(), 'reseq-demo-'));
  cleanups.push(async () => rmSync(configDir, { recursive: true, force: true }));
  const configPath = join(configDir, 'reseq.json');
  writeFileSync(
    configPath,
    JSON.stringify(
      { destinations: Object.fromEntries(DESTINATIONS.map((d) => [d, { type: 'http', url: urls[d] }])) },
      null,
      2,
    ),
  );
  cleanups.push(async () => {
    const redis = new Redis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  });

  const httpPort = await freePort();
  const env = { REDIS_URL: redisUrl, RESEQ_PREFIX: prefix, RESEQ_CONFIG: configPath };
  const apps = [
    startApp('ingest', { ...env, HTTP_PORT: String(httpPort) }),
    ...[1, 2, 3].map((n) =>
      startApp('transform-worker', {
        ...env,
        RESEQ_CONSUMER_NAME: `worker-${n}`,
        WORKER_CONCURRENCY: '4',
        TRANSFORM_MODULE: join(ROOT, 'demo', 'transform.mjs'),
      }),
    ),
    startApp('resequencer-sender', env),
  ];
  await waitForHttp(`http://127.0.0.1:${httpPort}/readyz`);
  await sleep(500);

  console.log(
    bold(
      `\nreseq demo: a message every ${INTERVAL_MS} ms for ${SECONDS} s, each transform ~${TRANSFORM_MS} ms, 3 workers, 3 destinations\n`,
    ) + dim('every message goes to billing; every 2nd also to ledger; every 3rd also to audit\n'),
  );
  const total = Math.floor((SECONDS * 1000) / INTERVAL_MS);
  const expected = Object.fromEntries(DESTINATIONS.map((d) => [d, 0]));
  const t0 = Date.now();
  for (let n = 0; n < total; n++) {
    await sleep(Math.max(0, t0 + n * INTERVAL_MS - Date.now()));
    const destinations = ['billing', ...(n % 2 === 0 ? ['ledger'] : []), ...(n % 3 === 0 ? ['audit'] : [])];
    for (const d of destinations) expected[d]++;
    sent.set(n, Date.now());
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: `demo-${n}`, destinations, payload: { n } }),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
  }
  const deadline = Date.now() + 15_000;
  while (DESTINATIONS.some((d) => received[d].length < expected[d]) && Date.now() < deadline) await sleep(100);

  const codes = [];
  for (const app of apps) {
    app.child.kill('SIGTERM');
    codes.push(`${app.name} ${await app.exited}`);
  }

  const complete = DESTINATIONS.every((d) => received[d].length === expected[d]);
  const lastSequential = total * TRANSFORM_MS - (total - 1) * INTERVAL_MS;
  console.log(bold('\nsummary'));
  for (const d of DESTINATIONS) {
    console.log(
      `  ${paint(LANE_COLOR[d], d.padEnd(7))} ${received[d].length}/${expected[d]} delivered, sequences 1..${received[d].length}`,
    );
  }
  console.log(`  order held:        ${orderBroken ? red('NO') : green('yes, every destination in arrival order')}`);
  console.log(
    `  duplicates:        ${duplicates === 0 ? green('none') : `${duplicates} redeliveries (dropped by Idempotency-Key)`}`,
  );
  console.log(
    `  latency:           p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${Math.max(...latencies)} ms` +
      `  (transform alone: ~${TRANSFORM_MS} ms)`,
  );
  console.log(
    `  sequential:        the last message would have waited ${lastSequential} ms, and growing ${TRANSFORM_MS - INTERVAL_MS} ms per message`,
  );
  console.log(dim(`  apps stopped with: ${codes.join(', ')}`));
  await cleanup();
  if (!complete || orderBroken) {
    console.error(red('\ndemo FAILED: not every message arrived in order'));
    process.exit(1);
  }
}

process.on('SIGINT', () => {
  void cleanup().then(() => process.exit(130));
});
main().catch(async (err) => {
  console.error(red(`demo failed: ${err.stack ?? err}`));
  await cleanup();
  process.exit(1);
});
