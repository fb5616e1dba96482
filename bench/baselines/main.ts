/**
 * The baselines' processes, one role per process:
 *
 *   main.ts front <bullmq|groupmq>   ingest stand-in: accepts messages, adds one job each
 *   main.ts worker <bullmq|groupmq>  runs the jobs: the bench transform, then delivery to the sink
 *   main.ts limit                    the in-memory limit (answers and forwards at once)
 *
 * Environment: `BENCH_CONFIG` (a reseq config file: its `destinations` are the sinks),
 * `REDIS_URL`, `HTTP_PORT` and `TCP_PORT` (0: any free port), `WORKER_CONCURRENCY`,
 * `TRANSFORM_MODULE`. Prints `{"msg":"ready",...}` once serving; exits 0 after SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '@reseq/config';
import { startFront, type Front } from './front-server.js';
import { createLanes } from './limit.js';
import { openConsumer, openProducer, type QueueKind } from './queues.js';
import { createSinkClient, type SinkTarget } from './sink-client.js';

type TransformFn = (
  message: { id: string; destination: string; sequence: number; payload: unknown; attempt: number },
  context: { signal: AbortSignal },
) => Promise<unknown>;

const log = (fields: Record<string, unknown>): void => console.log(JSON.stringify(fields));

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`baselines: ${name} is required`);
    process.exit(2);
  }
  return value;
}

function readDestinations(): Record<string, SinkTarget> {
  const file = JSON.parse(readFileSync(env('BENCH_CONFIG'), 'utf8')) as { destinations: Record<string, SinkTarget> };
  return file.destinations;
}

const [role, kindArg] = process.argv.slice(2);
const kind: QueueKind | undefined = kindArg === 'bullmq' || kindArg === 'groupmq' ? kindArg : undefined;
const stoppers: (() => Promise<void>)[] = [];
let front: Front | undefined;

if (role === 'limit') {
  const destinations = readDestinations();
  const lanes = createLanes(parseConfig({}, { destinations }));
  front = await startFront({
    destinations: Object.keys(destinations),
    enqueue: (message) => {
      lanes.get(message.destination)!.push(message);
      return Promise.resolve();
    },
    httpPort: Number(env('HTTP_PORT', '0')),
    tcpPort: Number(env('TCP_PORT', '0')),
  });
  stoppers.push(async () => {
    await Promise.all([...lanes.values()].map((lane) => lane.drained()));
    await Promise.all([...lanes.values()].map((lane) => lane.close()));
  });
} else if (role === 'front' && kind) {
  const producer = await openProducer(kind, env('REDIS_URL'));
  front = await startFront({
    destinations: Object.keys(readDestinations()),
    enqueue: (message) => producer.enqueue(message),
    httpPort: Number(env('HTTP_PORT', '0')),
    tcpPort: Number(env('TCP_PORT', '0')),
  });
  stoppers.push(() => producer.close());
} else if (role === 'worker' && kind) {
  const modulePath = resolve(env('TRANSFORM_MODULE'));
  const transform = ((await import(pathToFileURL(modulePath).href)) as { default: TransformFn }).default;
  const concurrency = Number(env('WORKER_CONCURRENCY', '16'));
  const sink = createSinkClient(readDestinations(), Math.min(concurrency, 256));
  const signal = new AbortController().signal;
  const consumer = await openConsumer(kind, env('REDIS_URL'), concurrency, async (message, attempt) => {
    const result = await transform(
      {
        id: message.id,
        destination: message.destination,
        sequence: message.sequence,
        payload: message.payload,
        attempt,
      },
      { signal },
    );
    if (result === null) return;
    await sink.deliver({
      destination: message.destination,
      sequence: message.sequence,
      id: message.id,
      payload: JSON.stringify(result),
    });
  });
  stoppers.push(async () => {
    await consumer.close();
    await sink.close();
  });
} else {
  console.error('usage: main.ts front <bullmq|groupmq> | worker <bullmq|groupmq> | limit');
  process.exit(2);
}

log({ msg: 'ready', role, kind, httpPort: front?.httpPort, tcpPort: front?.tcpPort });

process.once('SIGTERM', () => {
  void (async () => {
    // Stop taking messages first, then let the queue side finish what it holds.
    await front?.close();
    for (const stop of stoppers) await stop();
    log({ msg: 'stopped', role });
    process.exit(0);
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
