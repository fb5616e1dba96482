/**
 * CPU time and peak memory of a process, from Linux's /proc: `utime + stime` of
 * /proc/<pid>/stat (in clock ticks) and `VmHWM` (peak resident set) of /proc/<pid>/status.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** One reading of a process. */
export interface ProcSample {
  /** User + system CPU time so far, in seconds. */
  cpuSeconds: number;
  /** Peak resident set size so far, in bytes (undefined where /proc does not say). */
  peakRssBytes: number | undefined;
}

/**
 * utime and stime (fields 14 and 15) of a /proc/<pid>/stat line, in clock ticks. The command
 * name (field 2) is in parentheses and may hold spaces and parentheses, so the fields are
 * counted after its last `)`.
 */
export function parseProcStat(text: string): { utimeTicks: number; stimeTicks: number } {
  const end = text.lastIndexOf(')');
  if (end < 0) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  // After ")": field 3 (state) is index 0, so field n is index n - 3.
  const fields = text
    .slice(end + 1)
    .trim()
    .split(/\s+/);
  const utimeTicks = Number(fields[14 - 3]);
  const stimeTicks = Number(fields[15 - 3]);
  if (!Number.isFinite(utimeTicks) || !Number.isFinite(stimeTicks)) {
    throw new Error(`no utime/stime in /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  }
  return { utimeTicks, stimeTicks };
}

/** `VmHWM` of a /proc/<pid>/status text, in bytes; undefined where the line is missing. */
export function parseVmHwmBytes(status: string): number | undefined {
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

let clockTicks: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`; 100 where that fails, Linux's usual value). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isFinite(value) && value > 0 ? value : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Reads a live process; undefined once it has exited (or where there is no /proc). */
export async function sampleProcess(pid: number): Promise<ProcSample | undefined> {
  try {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/status`, 'utf8'),
    ]);
    const { utimeTicks, stimeTicks } = parseProcStat(stat);
    return { cpuSeconds: (utimeTicks + stimeTicks) / clockTicksPerSecond(), peakRssBytes: parseVmHwmBytes(status) };
  } catch {
    return undefined;
  }
}
