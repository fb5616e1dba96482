/**
 * Starts the config's `sources`: for each, a lease (source-lease.ts) that, while held, runs a
 * BullMQ (bullmq-source.ts) or Kue (kue-source.ts) consumer feeding the shared intake.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { sourceId, type SourceConfig } from '@reseq/config';
import type { Logger } from '@reseq/runtime';
import type { KeySchema, ReseqRedis } from '@reseq/store';
import type { MessageIntake } from '../accept-message.js';
import { consumeBullmq } from './bullmq-source.js';
import type { JobIntakeContext } from './job-intake.js';
import { closeKue, consumeKue } from './kue-source.js';
import type { SourceConsumer } from './source-consumer.js';
import { SourceLease } from './source-lease.js';

/** What {@link startSources} needs from the app. */
export interface StartSourcesOptions {
  sources: readonly SourceConfig[];
  redis: ReseqRedis;
  keys: KeySchema;
  intake: MessageIntake;
  maxMessageBytes: number;
  logger: Logger;
}

/** The running sources. */
export interface Sources {
  /** Stops consuming and gives every lease back. */
  stop(): Promise<void>;
}

/** Starts every configured source (none: a no-op). */
export function startSources(options: StartSourcesOptions): Sources {
  const owner = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let stopping = false;
  const leases = options.sources.map((source) => {
    const id = sourceId(source);
    const logger = options.logger.child({ component: 'source', source: id });
    let consumer: SourceConsumer | undefined;
    const ctx: JobIntakeContext = {
      intake: options.intake,
      sender: { source: id, rateKey: `queue:${id}` },
      destination: source.destination,
      maxMessageBytes: options.maxMessageBytes,
      logger,
      active: () => !stopping && lease.valid,
    };
    const lease: SourceLease = new SourceLease({
      redis: options.redis,
      keys: options.keys,
      owner,
      source: id,
      ttlMs: source.leaseTtlMs,
      logger,
      onAcquired: () => {
        consumer = source.type === 'bullmq' ? consumeBullmq(source, ctx, logger) : consumeKue(source, ctx, logger);
      },
      onLost: async () => {
        const running = consumer;
        consumer = undefined;
        await running?.stop();
      },
    });
    lease.start();
    return lease;
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(leases.map((lease) => lease.stop()));
      if (options.sources.some((source) => source.type === 'kue')) await closeKue();
    },
  };
}
