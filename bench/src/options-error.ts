/** A bad command line of `pnpm bench` (exit status 2). */
export class BenchUsageError extends Error {
  readonly code = 'BENCH_USAGE';
  override readonly name = 'BenchUsageError';
}
