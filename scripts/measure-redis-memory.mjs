#!/usr/bin/env node
// Measures what reseq's state costs in Redis memory, per item, for sizing a Redis (the numbers
// in docs/operations.md, "Sizing Redis memory"). It starts a private redis-server from PATH on a
// free port (no persistence), writes N items of each kind through reseq's own scripts (ingest,
// complete, buffer, advance), and divides `MEMORY USAGE <key> SAMPLES 0` (or, for the many
// small idempotency keys, what deleting them frees of INFO `used_memory`) by N. Needs
// `pnpm build` first.
//
//   node scripts/measure-redis-memory.mjs [payload bytes ...]   (default: 100 1024)
//   MEASURE_COUNT=5000 node scripts/measure-redis-memory.mjs 4096
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createLogger } from '@reseq/runtime';
import {
  KeySchema,
  acquireLeases,
  advanceDelivered,
  bufferResults,
  completeBatch,
  connectRedis,
  createRedis,
  decodeResultEntry,
  ensureWorkerGroup,
  readInput,
  writeIngestBatch,
} from '@reseq/store';

const COUNT = Number(process.env.MEASURE_COUNT ?? 2000);
const SIZES = process.argv.slice(2).map(Number);
const INGEST = { idempotencyTtlSeconds: 86_400, maxBacklog: 10_000_000, destinationWindow: 10_000_000 };

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** A JSON payload of about `bytes` bytes. */
const payloadOf = (bytes, i) => JSON.stringify({ i, pad: 'x'.repeat(Math.max(0, bytes - 20)) });

async function measure(redis, blocking, size) {
  const keys = new KeySchema(`measure-${size}`);
  const usage = async (key) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
  const perItem = (bytes) => Math.round(bytes / COUNT);
  const ingest = (destination, clientIds) =>
    writeIngestBatch(
      redis,
      keys,
      Array.from({ length: COUNT }, (_, i) => ({
        id: clientIds ? `order-${destination}-${i}` : `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        clientId: clientIds,
        destinations: [destination],
        payload: payloadOf(size, i),
      })),
      INGEST,
    );
  const rows = [];

  // Accepted, waiting for a worker; then read by one (pending in the group).
  await ingest('a', false);
  rows.push(['input entry, unread (in flight)', perItem(await usage(keys.input))]);
  await ensureWorkerGroup(redis, keys);
  const { entries } = await readInput(blocking, keys, 'w', '>', COUNT, 100);
  rows.push(['input entry, with a worker (in flight)', perItem(await usage(keys.input))]);

  // Transformed (same size out as in), then buffered, then delivered into the history.
  const body = (i) => payloadOf(size, i);
  await completeBatch(
    redis,
    keys,
    entries.map((entry, i) => ({ entry, kind: 'value', attempts: 1, body: body(i) })),
  );
  rows.push(['result, not yet buffered', perItem(await usage(keys.results('a')))]);
  const leaseValue = (await acquireLeases(redis, keys, 'measure', ['a'], 60_000, 1)).get('a');
  const results = (await redis.xrange(keys.results('a'), '-', '+')).map(([id, fields]) =>
    decodeResultEntry(id, fields),
  );
  await bufferResults(redis, keys, new Map([['a', { leaseValue, entries: results, malformed: [] }]]));
  rows.push(['buffered result (reorder buffer)', perItem(await usage(keys.buffer('a')))]);
  await advanceDelivered(redis, keys, [{ destination: 'a', leaseValue, from: 1, to: COUNT, history: COUNT }]);
  rows.push(['history entry (sender.historyLength)', perItem(await usage(keys.history('a')))]);

  // Dead letters: the transform gave up on every message of `b` (the original payload is kept).
  await ingest('b', false);
  const dead = await readInput(blocking, keys, 'w', '>', COUNT, 100);
  await completeBatch(
    redis,
    keys,
    dead.entries.map((entry) => ({
      entry,
      kind: 'dead',
      attempts: 5,
      body: 'TRANSFORM_ATTEMPTS_EXHAUSTED: Error: upstream timed out',
    })),
  );
  rows.push([
    'dead letter (dlq entry + index field)',
    perItem((await usage(keys.deadLetters)) + (await usage(keys.deadLetterIndex('b')))),
  ]);

  // Idempotency keys: written by the same ingest with client ids; measured by what deleting
  // them frees (INFO used_memory, so the TTL's entry counts too), in small batches so that no
  // client buffer grows meanwhile.
  await ingest('c', true);
  const ids = Array.from({ length: COUNT }, (_, i) => keys.clientId(`order-c-${i}`));
  const before = await usedMemory();
  for (let i = 0; i < ids.length; i += 100) await redis.del(...ids.slice(i, i + 100));
  rows.push(['idempotency key (client id, with TTL)', perItem(before - (await usedMemory()))]);

  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.tag}*`, 'COUNT', 1000);
    if (found.length > 0) await redis.unlink(...found);
    cursor = next;
  } while (cursor !== '0');
  return rows;
}

const port = await freePort();
const server = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  {
    stdio: 'ignore',
  },
);
const logger = createLogger({ app: 'measure', level: 'silent' });
const redis = createRedis({ url: `redis://127.0.0.1:${port}`, name: 'measure', logger, mode: 'wait' });
const blocking = createRedis({ url: `redis://127.0.0.1:${port}`, name: 'measure-read', logger, mode: 'wait' });
try {
  for (let tries = 0; ; tries++) {
    try {
      await connectRedis(redis);
      await connectRedis(blocking);
      break;
    } catch (err) {
      if (tries > 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const version = /redis_version:(\S+)/.exec(await redis.info('server'))[1];
  console.log(`Redis ${version}, ${COUNT} items of each kind, bytes per item (MEMORY USAGE ... SAMPLES 0 / ${COUNT})`);
  for (const size of SIZES.length > 0 ? SIZES : [100, 1024]) {
    console.log(`\npayload ~${size} bytes (the transformed payload the same size)`);
    for (const [what, bytes] of await measure(redis, blocking, size)) console.log(`  ${what.padEnd(42)} ${bytes}`);
  }
} finally {
  redis.disconnect();
  blocking.disconnect();
  server.kill('SIGTERM');
}
