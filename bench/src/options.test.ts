import { describe, expect, it } from 'vitest';
import { parseOptions, type BenchUsageError } from './options.js';
import { allRuns, SCENARIOS } from './scenarios.js';

describe('pnpm bench options', () => {
  it('runs every scenario by default, full length', () => {
    expect(parseOptions([])).toEqual({
      scenarios: [...SCENARIOS],
      quick: false,
      systems: undefined,
      variants: undefined,
      outDir: undefined,
      trace: false,
      topology: { shards: 1, clusterMasters: 0 },
    });
  });

  it('takes one or more scenarios, --quick, --systems, --out and --trace', () => {
    expect(parseOptions(['--scenario', 'seed', '--quick'])).toMatchObject({ scenarios: ['seed'], quick: true });
    expect(parseOptions(['--scenario=load,tail', '--scenario', 'load'])).toMatchObject({ scenarios: ['load', 'tail'] });
    expect(parseOptions(['--systems', 'reseq,limit', '--out', '/tmp/x', '--trace'])).toMatchObject({
      systems: ['reseq', 'limit'],
      outDir: '/tmp/x',
      trace: true,
    });
    expect(parseOptions(['--help'])).toBe('help');
  });

  it('takes --variant as the tables name it, and refuses one the chosen scenarios do not have', () => {
    expect(
      parseOptions(['--scenario', 'ceiling', '--variant', 'tcp, 64 dest', '--variant=http, 1 dest']),
    ).toMatchObject({ variants: ['tcp, 64 dest', 'http, 1 dest'] });
    expect(() => parseOptions(['--scenario', 'load', '--variant', 'tcp, 64 dest'])).toThrow(
      /unknown variant "tcp, 64 dest" of load/,
    );
  });

  it('refuses what it does not know with a coded error', () => {
    const refused = (argv: string[]): BenchUsageError => {
      try {
        parseOptions(argv);
      } catch (err) {
        return err as BenchUsageError;
      }
      throw new Error(`accepted ${argv.join(' ')}`);
    };
    expect(refused(['--scenario', 'speed'])).toMatchObject({
      code: 'BENCH_USAGE',
      message: expect.stringMatching(/unknown scenario "speed"/) as unknown,
    });
    expect(refused(['--scenario'])).toMatchObject({ message: '--scenario needs a value' });
    expect(refused(['--systems', 'reseq,kafka'])).toMatchObject({
      message: expect.stringMatching(/unknown system kafka/) as unknown,
    });
    expect(refused(['--fast'])).toMatchObject({ message: 'unknown argument "--fast"' });
  });
});

describe('the scenarios', () => {
  it('compare every system of a scenario on the same load, transforms and sinks', () => {
    for (const name of SCENARIOS) {
      const runs = allRuns([name], false);
      const byVariant = new Map<string, typeof runs>();
      for (const run of runs) byVariant.set(run.variant, [...(byVariant.get(run.variant) ?? []), run]);
      for (const group of byVariant.values()) {
        const shared = group.map((r) =>
          JSON.stringify([r.ingest, r.sink, r.destinations, r.durations, r.load, r.durationMs, r.seed]),
        );
        expect(new Set(shared).size, `${name}: one load for every system`).toBe(1);
      }
    }
  });

  it('run the baselines at reseq concurrency, except what sequential and groupmq cannot use', () => {
    for (const run of allRuns([...SCENARIOS], false)) {
      const reseq = allRuns([run.scenario], false).find((r) => r.variant === run.variant && r.system.kind === 'reseq')!;
      if (run.system.kind === 'bullmq') expect(run.system.concurrency).toBe(reseq.system.concurrency);
      if (run.system.kind === 'sequential') expect(run.system).toMatchObject({ workers: 1, concurrency: 1 });
      if (run.system.kind === 'groupmq')
        expect(run.system.concurrency * run.system.workers).toBeLessThanOrEqual(
          Math.max(run.destinations, run.system.workers),
        );
    }
  });

  it('match the issue: the seed at 4/s with 750 ms transforms for a minute, 1,000/s over 50 destinations', () => {
    const seed = allRuns(['seed'], false)[0]!;
    expect(seed).toMatchObject({
      load: { kind: 'rate', perSecond: 4 },
      durations: { kind: 'fixed', ms: 750 },
      durationMs: 60_000,
    });
    const load = allRuns(['load'], false)[0]!;
    expect(load).toMatchObject({ destinations: 50, load: { perSecond: 1000 }, durations: { minMs: 500, maxMs: 1000 } });
    expect(allRuns(['scaling'], false).map((r) => r.system.workers)).toEqual([1, 2, 4, 8]);
    expect(
      allRuns(['ceiling'], false)
        .filter((r) => r.system.id === 'reseq')
        .map((r) => r.variant),
    ).toEqual(['tcp, 1 dest', 'tcp, 64 dest', 'http, 1 dest', 'http, 64 dest']);
    expect(allRuns(['seed'], true)[0]!.durationMs).toBeLessThan(60_000);
  });
});
