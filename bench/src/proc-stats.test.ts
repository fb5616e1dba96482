import { describe, expect, it } from 'vitest';
import { parseProcStat, parseVmHwmBytes, sampleProcess } from './proc-stats.js';

describe('/proc parsing', () => {
  it('reads utime and stime after the command name, even one with spaces and parentheses', () => {
    const line = '4242 (node (my app) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 11 0 100 0 0';
    expect(parseProcStat(line)).toEqual({ utimeTicks: 1234, stimeTicks: 567 });
    expect(parseProcStat('1 (redis-server) S 0 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 4 0 9')).toEqual({
      utimeTicks: 7,
      stimeTicks: 3,
    });
    expect(() => parseProcStat('garbage')).toThrow(/not a \/proc/);
    expect(() => parseProcStat('1 (x) S 1 2')).toThrow(/no utime/);
  });

  it('reads VmHWM in bytes, and nothing where the line is missing', () => {
    const status = 'Name:\tnode\nVmPeak:\t  999 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n';
    expect(parseVmHwmBytes(status)).toBe(51200 * 1024);
    expect(parseVmHwmBytes('Name:\tkthreadd\n')).toBeUndefined();
  });

  it.runIf(process.platform === 'linux')('samples a live process and says nothing of a gone one', async () => {
    const sample = await sampleProcess(process.pid);
    expect(sample?.cpuSeconds).toBeGreaterThan(0);
    expect(sample?.peakRssBytes).toBeGreaterThan(1024 * 1024);
    expect(await sampleProcess(2 ** 22 + 12345)).toBeUndefined();
  });
});
