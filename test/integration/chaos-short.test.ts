/**
 * The short chaos run (`CHAOS_MESSAGES=3000 pnpm test:chaos`) as part of the suite: 3,000
 * messages over 25 s through 2 ingest, 4 workers and 3 senders while two of each kind are
 * SIGKILLed and Redis is SIGKILLed and restarted once, on its own Redis with AOF. Every
 * destination must get every accepted message, in order. test/chaos/README.md has the full run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { defaultOptions } from '../chaos/options.js';
import { runChaosScenario } from '../chaos/run-chaos.js';
import { formatSummary } from '../chaos/summary.js';

it(
  'loses and reorders nothing while apps and Redis are SIGKILLed (short chaos run)',
  { timeout: 150_000 },
  async () => {
    const options = defaultOptions(3_000);
    options.deadlineMs = 120_000;
    options.outDir = await mkdtemp(join(tmpdir(), 'reseq-chaos-'));
    const progress: string[] = [];
    const report = await runChaosScenario(options, (line) => progress.push(line));
    const summary = formatSummary(report);
    console.log(report.passed ? summary : [...progress, '', summary].join('\n'));

    expect(report.failures, summary).toEqual([]);
    expect(report.totals.lost).toBe(0);
    expect(report.totals.reordered).toBe(0);
    expect(report.chaos.redisRestarts).toBe(1);
    expect(Math.min(...Object.values(report.chaos.kills))).toBeGreaterThanOrEqual(2);
    // Logs and deliveries stay for a look at a failure; a pass leaves nothing behind.
    await rm(options.outDir, { recursive: true, force: true });
  },
);
