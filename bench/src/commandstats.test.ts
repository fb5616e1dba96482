import { describe, expect, it } from 'vitest';
import { diffCommandStats, parseCommandStats, summarizeCommands } from './commandstats.js';

// As redis-server 7.0 prints it (CRLF line ends), with a subcommand and a script.
const BEFORE = [
  '# Commandstats',
  'cmdstat_config|resetstat:calls=1,usec=35,usec_per_call=35.00,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0',
  'cmdstat_xadd:calls=10,usec=80,usec_per_call=8.00,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

const AFTER = [
  '# Commandstats',
  'cmdstat_config|resetstat:calls=1,usec=35,usec_per_call=35.00,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=3,usec=70,usec_per_call=23.33,rejected_calls=0,failed_calls=0',
  'cmdstat_xadd:calls=110,usec=880,usec_per_call=8.00,rejected_calls=0,failed_calls=0',
  'cmdstat_evalsha:calls=50,usec=4000,usec_per_call=80.00,rejected_calls=0,failed_calls=1',
  'cmdstat_hincrby:calls=100,usec=100,usec_per_call=1.00,rejected_calls=0,failed_calls=0',
  'cmdstat_xreadgroup:calls=40,usec=400,usec_per_call=10.00,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

describe('INFO commandstats', () => {
  it('parses each command with its calls and usec, subcommands included', () => {
    const stats = parseCommandStats(AFTER);
    expect(stats.get('xadd')).toEqual({ calls: 110, usec: 880 });
    expect(stats.get('config|resetstat')).toEqual({ calls: 1, usec: 35 });
    expect(stats.get('evalsha')).toEqual({ calls: 50, usec: 4000 });
    expect(stats.size).toBe(6);
    expect(parseCommandStats('# Commandstats\r\nnot a stat line\r\n').size).toBe(0);
  });

  it('diffs two readings and drops commands that did not run in between', () => {
    const diff = diffCommandStats(parseCommandStats(BEFORE), parseCommandStats(AFTER));
    expect(Object.fromEntries(diff)).toEqual({
      info: { calls: 2, usec: 50 },
      xadd: { calls: 100, usec: 800 },
      evalsha: { calls: 50, usec: 4000 },
      hincrby: { calls: 100, usec: 100 },
      xreadgroup: { calls: 40, usec: 400 },
    });
  });

  it('counts from zero when the counters were reset between the readings', () => {
    const diff = diffCommandStats(parseCommandStats(AFTER), parseCommandStats(BEFORE));
    // xadd went from 110 down to 10: a CONFIG RESETSTAT happened, the 10 are new.
    expect(diff.get('xadd')).toEqual({ calls: 10, usec: 80 });
  });

  it('sums per message without the harness own commands, with script calls and the top commands', () => {
    const diff = diffCommandStats(parseCommandStats(BEFORE), parseCommandStats(AFTER));
    const summary = summarizeCommands(diff, 100, { top: 2 });
    // 100 xadd + 50 evalsha + 100 hincrby + 40 xreadgroup; the 2 INFO calls are left out.
    expect(summary.calls).toBe(290);
    expect(summary.callsPerMessage).toBeCloseTo(2.9);
    expect(summary.scriptCalls).toBe(50);
    expect(summary.scriptCallsPerMessage).toBeCloseTo(0.5);
    expect(summary.top).toEqual([
      { command: 'hincrby', calls: 100, perMessage: 1 },
      { command: 'xadd', calls: 100, perMessage: 1 },
    ]);
    expect(summarizeCommands(diff, 0).callsPerMessage).toBe(0);
  });
});
