/**
 * A Kue source: while this ingest holds the source's lease, Kue's own worker with concurrency 1
 * takes the job type's jobs in the producer's order (within one priority), turns each job's
 * `data` into a message (job-intake.ts) and calls `done()` only once it is durable. Jobs that a
 * dead holder left active (Kue has no locks or stalled check) are taken first, oldest first.
 * A job that cannot become a message fails in Kue with the coded reason.
 */
import type { KueSourceConfig } from '@reseq/config';
import type { Logger } from '@reseq/runtime';
import { isReseqError } from '@reseq/runtime';
import kue from 'kue';
import { LeaseLostError, submitJob, type JobIntakeContext } from './job-intake.js';
import type { SourceConsumer } from './source-consumer.js';

/** The client id of a Kue job's message. */
export function kueClientId(source: KueSourceConfig, jobId: number | string): string {
  return `kue:${source.prefix}:${source.job}:${jobId}`;
}

/** The kue package keeps one queue per process (config checks that all kue sources share it). */
let shared: kue.Queue | undefined;

function kueQueue(source: KueSourceConfig, logger: Logger): kue.Queue {
  if (!shared) {
    shared = kue.createQueue({ prefix: source.prefix, redis: source.redis });
    shared.on('error', (err: unknown) => logger.warn({ err }, 'kue error'));
    // A holder killed between Kue's BLPOP of a job's wake-up token and taking the job leaves an
    // inactive job with no token: no worker would ever wake for it. Kue's own watchdog puts the
    // missing tokens back.
    shared.watchStuckJobs(1_000);
  }
  return shared;
}

/** Shuts the process's Kue queue down (ingest stop); a parked job is left to the next holder. */
export async function closeKue(): Promise<void> {
  const queue = shared;
  shared = undefined;
  if (!queue) return;
  await Promise.race([
    new Promise<void>((resolve) => queue.shutdown(0, '', () => resolve())),
    new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref()),
  ]);
}

/** One tenure of a Kue source (from taking its lease to losing or giving it back). */
export function consumeKue(source: KueSourceConfig, ctx: JobIntakeContext, logger: Logger): SourceConsumer {
  const queue = kueQueue(source, logger);
  let closing = false;
  let busy = false;
  let parked = false;

  /** Resolves true when the job was settled (completed or failed), false when it was parked. */
  const handle = async (job: kue.Job): Promise<Error | null | undefined> => {
    try {
      await submitJob(ctx, kueClientId(source, job.id), job.data);
      return null;
    } catch (err) {
      if (err instanceof LeaseLostError) return undefined;
      if (isReseqError(err)) {
        logger.warn({ jobId: job.id, code: err.code }, 'kue job cannot become a message; failed');
        return new Error(`${err.code}: ${err.message}`);
      }
      return err instanceof Error ? err : new Error(String(err));
    }
  };

  const started = (async () => {
    // Jobs left active by a dead holder are older than every inactive one: take them first.
    const orphans = await new Promise<kue.Job[]>((resolve, reject) =>
      kue.Job.rangeByType(source.job, 'active', 0, -1, 'asc', (err: Error | null, jobs: kue.Job[]) =>
        err ? reject(err) : resolve(jobs),
      ),
    );
    for (const job of orphans.sort((a, b) => Number(a.id) - Number(b.id))) {
      if (closing) return;
      busy = true;
      const outcome = await handle(job);
      busy = false;
      if (outcome === undefined) return;
      await new Promise<void>((resolve) => {
        if (outcome === null) job.complete(() => resolve());
        else
          job
            .failed()
            .error(outcome)
            .save(() => resolve());
      });
    }
    if (closing) return;
    logger.info({ job: source.job }, 'kue source consuming');
    queue.process(source.job, 1, (job: kue.Job, done: (err?: Error | null) => void) => {
      busy = true;
      void handle(job).then((outcome) => {
        if (outcome === undefined) {
          // Parked: neither done nor failed; the next holder takes it as an orphan.
          parked = true;
          return;
        }
        busy = false;
        done(outcome);
      });
    });
  })().catch((err: unknown) => logger.error({ err }, 'kue source could not start'));

  return {
    async stop() {
      closing = true;
      await started;
      while (busy && !parked) await new Promise((resolve) => setTimeout(resolve, 50));
      if (parked) return;
      await new Promise<void>((resolve) => queue.shutdown(0, source.job, () => resolve()));
    },
  };
}
