/**
 * `pnpm test:chaos`: the chaos run as a command. Parses flags and environment (see options.ts
 * or `--help`), runs the scenario, prints the summary, and exits 1 when a guarantee broke (or
 * the run could not finish), 2 when it could not start.
 */
import { parseOptions, usage } from './options.js';
import { runChaosScenario } from './run-chaos.js';
import { formatSummary } from './summary.js';

let options;
try {
  options = parseOptions(process.argv.slice(2), process.env);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  console.error(usage());
  process.exit(2);
}
if (options === 'help') {
  console.log(usage());
  process.exit(0);
}

// Interrupted: exit at once; the fixtures' exit hooks SIGKILL Redis and every app.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

// The run bounds itself; this is the bound of last resort should its cleanup hang.
const hardStop = setTimeout(() => {
  console.error('chaos: the run did not end within its deadline plus 2 minutes; exiting');
  process.exit(1);
}, options.deadlineMs + 120_000);
hardStop.unref();

try {
  const report = await runChaosScenario(options);
  console.log('');
  console.log(formatSummary(report));
  process.exitCode = report.passed ? 0 : 1;
} catch (err) {
  console.error('chaos: the run could not be set up:', err);
  process.exitCode = 2;
}
