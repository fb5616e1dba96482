import { describe, expect, it } from 'vitest';
import { runCli } from './cli.js';

/** Runs the CLI in process, collecting what it prints. */
async function cli(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { env, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  return { code, out, err };
}

describe('runCli', () => {
  it('prints the usage for --help and exits 0, without touching Redis', async () => {
    const { code, out, err } = await cli(['--help'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(0);
    expect(out.join('')).toMatch(/^usage: pnpm reseq <command>/);
    expect(err).toEqual([]);
  });

  it('refuses a bad command line with exit 2 before reading the config', async () => {
    const { code, out, err } = await cli(['dlq', 'retry', 'billing'], { RESEQ_CONFIG: '/nonexistent.json' });
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err).toEqual(['reseq: missing arguments: dlq retry <destination> <sequence> (see reseq --help)']);
  });

  it('refuses an invalid environment with exit 7, listing every problem on one line', async () => {
    const { code, err } = await cli(['status'], { REDIS_URL: 'http://x', RESEQ_PREFIX: 'bad prefix' });
    expect(code).toBe(7);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^reseq: invalid configuration: env REDIS_URL: .*; env RESEQ_PREFIX: /);
  });
});
