/**
 * Fault injection for crash tests: `faultPoint(name)` marks a place where a crash (or a pause)
 * matters, and SIGKILLs the process right there (or SIGSTOPs it) when the environment variable
 * `RESEQ_FAULT` names that point. Unset (as in production), a call costs one comparison; the
 * variable is read once.
 */

/** What a planned fault does: `kill` (SIGKILL) or `stop` (SIGSTOP, until a SIGCONT). */
export type FaultAction = 'kill' | 'stop';

/** Point name -> the hit (1-based) on which the fault happens, and what it does. */
export type FaultPlan = ReadonlyMap<string, { at: number; action: FaultAction }>;

const POINT = /^([a-z0-9-]+)(?::(\d+))?(?::(kill|stop))?$/;

/**
 * Parses `RESEQ_FAULT`: comma-separated points, each `<name>[:<n>][:kill|:stop]`: on the n-th
 * hit of the point (default the first), SIGKILL the process (default) or SIGSTOP it. For example
 * `sender-after-2xx:3`.
 *
 * @returns undefined for an unset or empty value.
 * @throws Error naming every malformed entry.
 */
export function parseFaultPlan(text: string | undefined): FaultPlan | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const plan = new Map<string, { at: number; action: FaultAction }>();
  const bad: string[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const match = POINT.exec(part);
    const at = Number(match?.[2] ?? 1);
    if (!match || at < 1) bad.push(part);
    else plan.set(match[1]!, { at, action: (match[3] as FaultAction | undefined) ?? 'kill' });
  }
  if (bad.length > 0) {
    throw new Error(
      `RESEQ_FAULT: expected "<point>[:<n>][:kill|:stop]" (n >= 1), comma-separated; got ${JSON.stringify(bad)}`,
    );
  }
  return plan;
}

/**
 * Makes a fault-point function for `plan` that calls `act` on the planned hit of a point
 * (tests of this module inject `act`; apps use {@link faultPoint}).
 */
export function createFaultPoint(
  plan: FaultPlan | undefined,
  act: (point: string, action: FaultAction) => void,
): (name: string) => void {
  if (plan === undefined) return () => {};
  const hits = new Map<string, number>();
  return (name) => {
    const planned = plan.get(name);
    if (planned === undefined) return;
    const hit = (hits.get(name) ?? 0) + 1;
    hits.set(name, hit);
    if (hit === planned.at) act(name, planned.action);
  };
}

function signalSelf(point: string, action: FaultAction): void {
  // Written synchronously (stderr is a pipe or a file under test), in pino's JSON shape, so a
  // test can wait for it; then a real signal: no exit handlers, no flushing, no goodbyes.
  const msg = action === 'kill' ? 'RESEQ_FAULT: killing this process' : 'RESEQ_FAULT: stopping this process';
  process.stderr.write(
    `${JSON.stringify({ level: 60, time: Date.now(), pid: process.pid, msg, faultPoint: point })}\n`,
  );
  process.kill(process.pid, action === 'kill' ? 'SIGKILL' : 'SIGSTOP');
}

/**
 * A crash point for fault tests. When `RESEQ_FAULT` names `name` (see {@link parseFaultPlan}),
 * the process SIGKILLs (or SIGSTOPs) itself at the planned hit; otherwise it does nothing.
 * Points in reseq: `ingest-after-write`, `worker-after-complete`, `sender-before-send`,
 * `sender-after-2xx`, `sender-after-record` (docs/operations.md).
 *
 * @throws Error at import when `RESEQ_FAULT` is malformed.
 */
export const faultPoint: (name: string) => void = createFaultPoint(parseFaultPlan(process.env.RESEQ_FAULT), signalSelf);
