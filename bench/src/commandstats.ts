/**
 * Redis commands per message, from `INFO commandstats` taken before and after a run. Commands a
 * Lua script runs are counted too (as their own commands, besides the EVALSHA that ran them),
 * so `calls` is the work Redis did; `scriptCalls` counts the script invocations alone.
 */

/** One command's counters. */
export interface CommandStat {
  calls: number;
  usec: number;
}

/** What a run's commands come to. */
export interface CommandSummary {
  /** Commands executed, script-internal ones included. */
  calls: number;
  callsPerMessage: number;
  /** EVAL, EVALSHA and FCALL invocations (each one round trip with many commands inside). */
  scriptCalls: number;
  scriptCallsPerMessage: number;
  /** The most called commands. */
  top: { command: string; calls: number; perMessage: number }[];
}

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/**
 * Parses the text of `INFO commandstats`: lines such as
 * `cmdstat_xadd:calls=12,usec=80,usec_per_call=6.67,rejected_calls=0,failed_calls=0`
 * (subcommands look like `cmdstat_config|resetstat`). Other lines are ignored.
 */
export function parseCommandStats(info: string): Map<string, CommandStat> {
  const stats = new Map<string, CommandStat>();
  for (const raw of info.split('\n')) {
    const line = raw.trim();
    const match = /^cmdstat_([^:]+):(.*)$/.exec(line);
    if (!match) continue;
    const fields = new Map<string, number>();
    for (const pair of match[2]!.split(',')) {
      const [key, value] = pair.split('=');
      if (key !== undefined && value !== undefined) fields.set(key, Number(value));
    }
    const calls = fields.get('calls');
    if (calls === undefined || !Number.isFinite(calls)) continue;
    stats.set(match[1]!.toLowerCase(), { calls, usec: fields.get('usec') ?? 0 });
  }
  return stats;
}

/** `after - before`, per command; commands with no new calls are left out. */
export function diffCommandStats(
  before: ReadonlyMap<string, CommandStat>,
  after: ReadonlyMap<string, CommandStat>,
): Map<string, CommandStat> {
  const diff = new Map<string, CommandStat>();
  for (const [command, stat] of after) {
    const earlier = before.get(command);
    // A counter lower than before means the stats were reset in between: count from zero.
    const calls = earlier && stat.calls >= earlier.calls ? stat.calls - earlier.calls : stat.calls;
    const usec = earlier && stat.usec >= earlier.usec ? stat.usec - earlier.usec : stat.usec;
    if (calls > 0) diff.set(command, { calls, usec });
  }
  return diff;
}

/**
 * Totals of a diff per message. `exclude` drops commands the harness itself sent (INFO, CONFIG
 * RESETSTAT).
 */
export function summarizeCommands(
  diff: ReadonlyMap<string, CommandStat>,
  messages: number,
  options: { top?: number; exclude?: readonly string[] } = {},
): CommandSummary {
  const exclude = new Set(options.exclude ?? ['info', 'config|resetstat']);
  const per = (n: number): number => (messages > 0 ? n / messages : 0);
  let calls = 0;
  let scriptCalls = 0;
  const rows: { command: string; calls: number; perMessage: number }[] = [];
  for (const [command, stat] of diff) {
    if (exclude.has(command)) continue;
    calls += stat.calls;
    if (SCRIPT_COMMANDS.has(command)) scriptCalls += stat.calls;
    rows.push({ command, calls: stat.calls, perMessage: per(stat.calls) });
  }
  rows.sort((a, b) => b.calls - a.calls || a.command.localeCompare(b.command));
  return {
    calls,
    callsPerMessage: per(calls),
    scriptCalls,
    scriptCallsPerMessage: per(scriptCalls),
    top: rows.slice(0, options.top ?? 8),
  };
}

/**
 * Adds up readings of several servers (the masters of a cluster), per command: what the whole
 * Redis did. A command that ran on one node only is counted once.
 */
export function sumCommandStats(readings: Iterable<ReadonlyMap<string, CommandStat>>): Map<string, CommandStat> {
  const sum = new Map<string, CommandStat>();
  for (const reading of readings) {
    for (const [command, stat] of reading) {
      const total = sum.get(command);
      sum.set(command, total ? { calls: total.calls + stat.calls, usec: total.usec + stat.usec } : { ...stat });
    }
  }
  return sum;
}
