/**
 * A BullMQ source: while this ingest holds the source's lease, one BullMQ Worker with
 * concurrency 1 takes the queue's jobs in the producer's order (within one priority), turns each
 * job's `data` into a message (job-intake.ts) and completes the job only once it is durable.
 * A job that cannot become a message fails with an UnrecoverableError carrying the coded reason.
 */
import type { BullmqSourceConfig } from '@reseq/config';
import type { Logger } from '@reseq/runtime';
import { isReseqError } from '@reseq/runtime';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeaseLostError, submitJob, type JobIntakeContext } from './job-intake.js';
import type { SourceConsumer } from './source-consumer.js';

/** The client id of a BullMQ job's message. */
export function bullmqClientId(source: BullmqSourceConfig, jobId: string): string {
  return `bullmq:${source.queue}:${jobId}`;
}

/** One tenure of a BullMQ source (from taking its lease to losing or giving it back). */
export function consumeBullmq(source: BullmqSourceConfig, ctx: JobIntakeContext, logger: Logger): SourceConsumer {
  const connection = new Redis(source.redis, { maxRetriesPerRequest: null });
  connection.on('error', (err) => logger.debug({ err }, 'bullmq connection error'));
  const queue = new Queue(source.queue, { connection, prefix: source.prefix });
  queue.on('error', (err) => logger.warn({ err }, 'bullmq queue error'));
  let closing = false;
  let busy = false;
  let parked = false;

  const processor = async (job: Job): Promise<{ id: string; sequences: Record<string, number> }> => {
    busy = true;
    try {
      return await submitJob(ctx, bullmqClientId(source, job.id ?? ''), job.data);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        // Neither complete nor fail it: the job stays active, its lock runs out, and the next
        // holder moves it back to the head of the queue (BullMQ's stalled check) and takes it.
        parked = true;
        return new Promise(() => undefined);
      }
      if (isReseqError(err)) {
        logger.warn({ jobId: job.id, code: err.code }, 'bullmq job cannot become a message; failed');
        throw new UnrecoverableError(`${err.code}: ${err.message}`);
      }
      throw err;
    } finally {
      if (!parked) busy = false;
    }
  };

  const worker = new Worker(source.queue, processor, {
    connection,
    prefix: source.prefix,
    autorun: false,
    concurrency: 1,
    lockDuration: source.leaseTtlMs,
    stalledInterval: Math.max(250, Math.floor(source.leaseTtlMs / 2)),
    // A job taken back after a crash is not a failure of the job: never fail it for stalling.
    maxStalledCount: Number.MAX_SAFE_INTEGER,
  });
  worker.on('error', (err) => logger.warn({ err }, 'bullmq worker error'));

  const started = (async () => {
    await worker.waitUntilReady();
    // A job a dead holder left active comes first: wait until the stalled check has moved it
    // back to the head of the queue, or a newer job would overtake it.
    await worker.startStalledCheckTimer();
    for (let logged = false; !closing && (await queue.getActiveCount()) > 0; logged = true) {
      if (!logged) logger.info("bullmq source: waiting for the previous holder's active job to return to the queue");
      await sleep(Math.max(100, source.leaseTtlMs / 10));
    }
    if (closing) return;
    logger.info({ queue: source.queue }, 'bullmq source consuming');
    void worker.run().catch((err: unknown) => logger.error({ err }, 'bullmq worker stopped'));
  })().catch((err: unknown) => logger.error({ err }, 'bullmq source could not start'));

  return {
    async stop() {
      closing = true;
      await started;
      // A job still waiting for Redis or backpressure is soon left active (see the processor):
      // then close at once; a job being completed is let finish.
      while (busy && !parked) await sleep(50);
      await worker.close(parked);
      await queue.close();
      connection.disconnect();
    },
  };
}
