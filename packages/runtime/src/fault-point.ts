/**
 * Fault injection for crash tests: `faultPoint(name)` marks a place where a crash matters, and
 * SIGKILLs the process right there when the environment variable `RESEQ_FAULT` names that
 * point. Unset (as in production), a call costs one comparison; the variable is read once.
 */

/** Point name -> the hit (1-based) on which the process kills itself. */
export type FaultPlan = ReadonlyMap<string, number>;

const POINT = /^([a-z0-9-]+)(?::(\d+))?$/;

/**
 * Parses `RESEQ_FAULT`: comma-separated points, each `<name>` (kill on the first hit) or
 * `<name>:<n>` (kill on the n-th hit), e.g. `sender-after-2xx:3`.
 *
 * @returns undefined for an unset or empty value.
 * @throws Error naming every malformed entry.
 */
export function parseFaultPlan(text: string | undefined): FaultPlan | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const plan = new Map<string, number>();
  const bad: string[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const match = POINT.exec(part);
    const at = Number(match?.[2] ?? 1);
    if (!match || at < 1) bad.push(part);
    else plan.set(match[1]!, at);
  }
  if (bad.length > 0) {
    throw new Error(`RESEQ_FAULT: expected "<point>[:<n>]" (n >= 1), comma-separated; got ${JSON.stringify(bad)}`);
  }
  return plan;
}

/**
 * Makes a fault-point function for `plan` that calls `kill` on the planned hit of a point
 * (tests of this module inject `kill`; apps use {@link faultPoint}).
 */
export function createFaultPoint(plan: FaultPlan | undefined, kill: (point: string) => void): (name: string) => void {
  if (plan === undefined) return () => {};
  const hits = new Map<string, number>();
  return (name) => {
    const at = plan.get(name);
    if (at === undefined) return;
    const hit = (hits.get(name) ?? 0) + 1;
    hits.set(name, hit);
    if (hit === at) kill(name);
  };
}

function killSelf(point: string): void {
  // Written synchronously (stderr is a pipe or a file under test), in pino's JSON shape, so a
  // test can wait for it; then a real SIGKILL: no exit handlers, no flushing, no goodbyes.
  process.stderr.write(
    `${JSON.stringify({ level: 60, time: Date.now(), pid: process.pid, msg: 'RESEQ_FAULT: killing this process', faultPoint: point })}\n`,
  );
  process.kill(process.pid, 'SIGKILL');
}

/**
 * A crash point for fault tests. When `RESEQ_FAULT` names `name` (see {@link parseFaultPlan}),
 * the process SIGKILLs itself at the planned hit; otherwise it does nothing. Points in reseq:
 * `ingest-after-write`, `worker-after-complete`, `sender-after-2xx`, `sender-after-record`
 * (docs/operations.md).
 *
 * @throws Error at import when `RESEQ_FAULT` is malformed.
 */
export const faultPoint: (name: string) => void = createFaultPoint(parseFaultPlan(process.env.RESEQ_FAULT), killSelf);
