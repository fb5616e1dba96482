/**
 * Command-line options of `pnpm bench`.
 */
import { BenchUsageError } from './options-error.js';
import { allRuns, SCENARIOS, type ScenarioName } from './scenarios.js';
import { DEFAULT_TOPOLOGY, parseClusterMasters, parseShards, TOPOLOGY_USAGE, type RedisTopology } from './topology.js';

export { BenchUsageError };

/** Parsed options. */
export interface BenchOptions {
  scenarios: ScenarioName[];
  quick: boolean;
  /** Only these system ids (all when undefined). */
  systems: string[] | undefined;
  /** Only the runs of these variants, such as "tcp, 64 dest" (all when undefined). */
  variants: string[] | undefined;
  /** Where results go (default bench/results). */
  outDir: string | undefined;
  /** Also write each run's per-message trace as CSV beside the JSON. */
  trace: boolean;
  /** `--shards` and `--cluster-masters`: where reseq's keys live (the baselines ignore it). */
  topology: RedisTopology;
}

export const SYSTEM_IDS = [
  'reseq',
  'reseq+hedge',
  'reseq+batch',
  'reseq+ahead',
  'sequential',
  'bullmq',
  'groupmq',
  'limit',
];

export function usage(): string {
  return [
    'usage: pnpm bench [--scenario <name>]... [--quick] [--systems <id,...>] [--out <dir>] [--trace]',
    '                  [--variant <name>]... [--shards <n>] [--cluster-masters <m>]',
    '',
    `  --scenario <name>   ${SCENARIOS.join(' | ')} (repeatable, or comma-separated; default: all)`,
    '  --quick             short runs for development (seconds instead of a minute)',
    `  --systems <ids>     only these systems: ${SYSTEM_IDS.join(', ')}`,
    '  --variant <name>    only this variant of a scenario, as the tables name it (repeatable), such as',
    '                      --variant "tcp, 64 dest" for the ceiling or --variant "8 workers" for scaling',
    '  --out <dir>         where the JSON results and the plot go (default bench/results)',
    "  --trace             also write every run's per-message trace as CSV (k, destination, sequence,",
    '                      planned ms, accepted, delivered, ideal; times in ms since the epoch)',
    ...TOPOLOGY_USAGE,
  ].join('\n');
}

/** Parses argv (after the script name); 'help' for --help. */
export function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  const options: BenchOptions = {
    scenarios: [],
    quick: false,
    systems: undefined,
    variants: undefined,
    outDir: undefined,
    trace: false,
    topology: { ...DEFAULT_TOPOLOGY },
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new BenchUsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const take = (): string => inline ?? value(++i, flag);
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--quick':
        options.quick = true;
        break;
      case '--trace':
        options.trace = true;
        break;
      case '--scenario':
        for (const name of take().split(',')) {
          if (!(SCENARIOS as readonly string[]).includes(name)) {
            throw new BenchUsageError(`unknown scenario "${name}" (one of ${SCENARIOS.join(', ')})`);
          }
          if (!options.scenarios.includes(name as ScenarioName)) options.scenarios.push(name as ScenarioName);
        }
        break;
      case '--systems': {
        const ids = take().split(',');
        const unknown = ids.filter((id) => !SYSTEM_IDS.includes(id));
        if (unknown.length > 0)
          throw new BenchUsageError(`unknown system ${unknown.join(', ')} (one of ${SYSTEM_IDS.join(', ')})`);
        options.systems = ids;
        break;
      }
      case '--variant':
        options.variants = [...(options.variants ?? []), take()];
        break;
      case '--out':
        options.outDir = take();
        break;
      case '--shards':
        options.topology.shards = parseShards(take());
        break;
      case '--cluster-masters':
        options.topology.clusterMasters = parseClusterMasters(take());
        break;
      default:
        throw new BenchUsageError(`unknown argument "${arg}"`);
    }
  }
  if (options.scenarios.length === 0) options.scenarios = [...SCENARIOS];
  if (options.variants) {
    const known = new Set(allRuns(options.scenarios, options.quick).map((r) => r.variant));
    const unknown = options.variants.filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new BenchUsageError(
        `unknown variant ${unknown.map((v) => `"${v}"`).join(', ')} of ${options.scenarios.join(', ')} ` +
          `(one of ${[...known].map((v) => `"${v}"`).join(', ')})`,
      );
    }
  }
  return options;
}
