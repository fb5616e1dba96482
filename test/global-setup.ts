/**
 * Global setup of the `integration` project: one Redis for the whole run, from the fixture.
 * Tests read its URL with `inject('redisUrl')` (typed below) or `process.env.RESEQ_TEST_REDIS_URL`
 * (for child processes), and keep apart with `uniquePrefix()`.
 */
import type { TestProject } from 'vitest/node';
import { startRedis } from './fixtures/redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `redis://127.0.0.1:<port>` of the run's shared test Redis (never the one on 6379). */
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  // Set before the workers start, so they (and anything they spawn) inherit it.
  process.env.RESEQ_TEST_REDIS_URL = redis.url;
  return async () => {
    await redis.stop();
  };
}
