/**
 * The base of every error catalogue in reseq: a stable string `code`, an HTTP status where one
 * applies, readonly context and a `cause`. Each package lists its own codes (see docs/errors.md).
 */

/** Options of {@link ReseqError}. */
export interface ReseqErrorOptions {
  /** HTTP status this error maps to at an HTTP boundary; default 500. */
  statusCode?: number;
  /** Whether the caller may retry the same request (429/503 style). */
  retryable?: boolean;
  /** Structured details, safe to log and to return to a client. */
  context?: Readonly<Record<string, unknown>>;
  cause?: unknown;
}

/** An error with a stable, documented `code`. */
export class ReseqError extends Error {
  override readonly name: string = 'ReseqError';
  readonly code: string;
  readonly statusCode: number;
  readonly retryable: boolean;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: ReseqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.statusCode = options.statusCode ?? 500;
    this.retryable = options.retryable ?? false;
    this.context = Object.freeze({ ...options.context });
  }

  /** The JSON body an HTTP or TCP client sees. */
  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Type guard for {@link ReseqError}. */
export function isReseqError(value: unknown): value is ReseqError {
  return value instanceof ReseqError;
}

/**
 * Normalises anything thrown into a {@link ReseqError} at a boundary; unknown throws become
 * `RESEQ_INTERNAL` (500) with the original as `cause`.
 */
export function toReseqError(value: unknown): ReseqError {
  if (isReseqError(value)) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new ReseqError('RESEQ_INTERNAL', message, { cause: value });
}
