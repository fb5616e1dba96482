/**
 * The two Redis queues the baselines are built on, each used the way its documentation shows:
 * BullMQ (one queue for every destination; with concurrency 1 and one worker it is the
 * sequential baseline) and groupmq (one group per destination: ordered within a group, one job
 * of a group at a time).
 */
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq';
import { Queue as GroupQueue, Worker as GroupWorker } from 'groupmq';
import { Redis } from 'ioredis';
import type { FrontMessage } from './front-server.js';

const QUEUE = 'bench';
/** Longer than any planned transform (tail runs take up to 3 s); groupmq's default is 30 s. */
const JOB_TIMEOUT_MS = 60_000;
const ATTEMPTS = 5;

/** The producing side: adds one job per accepted message. */
export interface QueueProducer {
  enqueue(message: FrontMessage): Promise<void>;
  close(): Promise<void>;
}

/** The consuming side. */
export interface QueueConsumer {
  close(): Promise<void>;
}

/** Runs one job: transform, then deliver; throws to have the queue retry it. */
export type JobHandler = (message: FrontMessage, attempt: number) => Promise<void>;

export type QueueKind = 'bullmq' | 'groupmq';

function connection(url: string): Redis {
  // BullMQ requires maxRetriesPerRequest: null on a worker's connection.
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  redis.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', error: err.message })));
  return redis;
}

/** Opens the producing side of a queue. */
export async function openProducer(kind: QueueKind, redisUrl: string): Promise<QueueProducer> {
  const redis = connection(redisUrl);
  if (kind === 'bullmq') {
    const queue = new BullQueue<FrontMessage>(QUEUE, {
      connection: redis,
      defaultJobOptions: {
        attempts: ATTEMPTS,
        backoff: { type: 'exponential', delay: 100 },
        removeOnComplete: true,
        removeOnFail: 1000,
      },
    });
    await queue.waitUntilReady();
    return {
      async enqueue(message) {
        await queue.add('message', message);
      },
      async close() {
        await queue.close();
        redis.disconnect();
      },
    };
  }
  const queue = new GroupQueue<FrontMessage>({
    redis,
    namespace: QUEUE,
    jobTimeoutMs: JOB_TIMEOUT_MS,
    maxAttempts: ATTEMPTS,
  });
  return {
    async enqueue(message) {
      await queue.add({ groupId: message.destination, data: message });
    },
    async close() {
      await queue.close();
      redis.disconnect();
    },
  };
}

/** Starts consuming a queue with `concurrency` jobs at a time. */
export async function openConsumer(
  kind: QueueKind,
  redisUrl: string,
  concurrency: number,
  handle: JobHandler,
): Promise<QueueConsumer> {
  const redis = connection(redisUrl);
  if (kind === 'bullmq') {
    const worker = new BullWorker<FrontMessage>(QUEUE, (job) => handle(job.data, job.attemptsMade + 1), {
      connection: redis,
      concurrency,
    });
    worker.on('error', (err) => console.error(JSON.stringify({ msg: 'worker error', error: err.message })));
    await worker.waitUntilReady();
    return {
      async close() {
        await worker.close();
        redis.disconnect();
      },
    };
  }
  const queue = new GroupQueue<FrontMessage>({
    redis,
    namespace: QUEUE,
    jobTimeoutMs: JOB_TIMEOUT_MS,
    maxAttempts: ATTEMPTS,
  });
  const worker = new GroupWorker<FrontMessage>({
    queue,
    concurrency,
    handler: (job) => handle(job.data, job.attempts + 1),
    onError: (err) => console.error(JSON.stringify({ msg: 'worker error', error: String(err) })),
  });
  void worker.run();
  return {
    async close() {
      // Its close waits up to twice this for running jobs; the harness SIGKILLs after 15 s.
      await worker.close(3_000);
      await queue.close();
      redis.disconnect();
    },
  };
}
