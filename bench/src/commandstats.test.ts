import { describe, expect, it } from 'vitest';
import { diffCommandStats, parseCommandStats, summarizeCommands, sumCommandStats } from './commandstats.js';

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

describe('INFO commandstats over the masters of a cluster', () => {
  const master = (lines: string[]): string => ['# Commandstats', ...lines, ''].join('\r\n');
  const stat = (command: string, calls: number, usec: number): string =>
    `cmdstat_${command}:calls=${calls},usec=${usec},usec_per_call=${(usec / calls).toFixed(2)},rejected_calls=0,failed_calls=0`;

  it('adds up every command over the nodes, including one that ran on one node only', () => {
    const sum = sumCommandStats([
      parseCommandStats(master([stat('evalsha', 10, 500), stat('xadd', 30, 90), stat('cluster|slots', 2, 40)])),
      parseCommandStats(master([stat('evalsha', 20, 1100), stat('xadd', 5, 10)])),
      parseCommandStats(master([stat('evalsha', 5, 300), stat('xreadgroup', 7, 70)])),
    ]);
    expect(Object.fromEntries(sum)).toEqual({
      evalsha: { calls: 35, usec: 1900 },
      xadd: { calls: 35, usec: 100 },
      'cluster|slots': { calls: 2, usec: 40 },
      xreadgroup: { calls: 7, usec: 70 },
    });
    expect(sumCommandStats([]).size).toBe(0);
  });

  it('gives the run the commands of every master, without the harness INFO on each', () => {
    const reset = master([stat('config|resetstat', 1, 30)]);
    const before = sumCommandStats([reset, reset, reset].map(parseCommandStats));
    const after = sumCommandStats(
      [
        master([
          stat('config|resetstat', 1, 30),
          stat('info', 2, 40),
          stat('evalsha', 40, 4000),
          stat('hset', 100, 90),
        ]),
        master([stat('config|resetstat', 1, 30), stat('info', 2, 40), stat('evalsha', 30, 3000), stat('hset', 60, 60)]),
        master([stat('config|resetstat', 1, 30), stat('info', 2, 40), stat('evalsha', 30, 3100), stat('hset', 40, 30)]),
      ].map(parseCommandStats),
    );
    const summary = summarizeCommands(diffCommandStats(before, after), 50);
    // 100 EVALSHA + 200 HSET over the three masters; the 6 INFO and 3 CONFIG RESETSTAT are the harness's.
    expect(summary.calls).toBe(300);
    expect(summary.callsPerMessage).toBe(6);
    expect(summary.scriptCalls).toBe(100);
    expect(summary.top).toEqual([
      { command: 'hset', calls: 200, perMessage: 4 },
      { command: 'evalsha', calls: 100, perMessage: 2 },
    ]);
  });
});
