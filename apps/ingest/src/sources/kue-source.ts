/**
 * A Kue source: while this ingest holds the source's lease, Kue's own worker with concurrency 1
 * takes the job type's jobs in the producer's order (within one priority), turns each job's
 * `data` into a message (job-intake.ts) and calls `done()` only once it is durable. Jobs that a
 * dead holder left active (Kue has no locks or stalled check), or left between Kue's two steps
 * of taking a job (see {@link limboJobs}), are taken first, oldest first.
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

/** Kue's Redis client, with the helpers kue adds to it (types omit them). */
interface KueClient {
  getKey(key: string): string;
  stripFIFO(zid: string): string;
  multi(): KueMulti;
}
interface KueMulti {
  zrange(key: string, start: number, stop: number): KueMulti;
  exec(cb: (err: Error | null, replies: unknown[]) => void): void;
}

function getJob(id: string, type: string): Promise<kue.Job | undefined> {
  return new Promise((resolve, reject) =>
    kue.Job.get(Number(id), type, (err: Error | null, job?: kue.Job) => (err ? reject(err) : resolve(job))),
  );
}

/**
 * Jobs a dead holder took off the type's inactive set but never marked active: Kue's worker
 * first pops the job from `jobs:<type>:inactive`, then loads it and sets it active, so a holder
 * killed in between leaves a job in no set of its type (still in the global `jobs:inactive`),
 * which no worker would ever take. Both sets are read in one MULTI; only the lease holder
 * consumes the type, and it has not started yet.
 */
async function limboJobs(type: string): Promise<kue.Job[]> {
  const client = (kue as unknown as { redis: { client(): KueClient } }).redis.client();
  const [all, ofType] = await new Promise<string[][]>((resolve, reject) =>
    client
      .multi()
      .zrange(client.getKey('jobs:inactive'), 0, -1)
      .zrange(client.getKey(`jobs:${type}:inactive`), 0, -1)
      .exec((err, replies) => (err ? reject(err) : resolve(replies as string[][]))),
  );
  const waiting = new Set(ofType);
  const missing = (all ?? []).filter((zid) => !waiting.has(zid)).map((zid) => client.stripFIFO(zid));
  const jobs = await Promise.all(missing.map((id) => getJob(id, type).catch(() => undefined)));
  return jobs.filter((job): job is kue.Job => job?.type === type);
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
    orphans.push(...(await limboJobs(source.job)));
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
