/**
 * Loads the user's transform (TRANSFORM_MODULE): an ES module whose default export (or export
 * named `transform`) is `async (message, context) => payload | null`. Without one, the
 * identity transform delivers every payload unchanged.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ReseqError, type Logger } from '@reseq/runtime';

/** The message a transform receives, as the contract defines it. */
export interface TransformMessage {
  id: string;
  destination: string;
  sequence: number;
  payload: unknown;
  /** 1 on the first try. */
  attempt: number;
}

/** The second argument of a transform. */
export interface TransformContext {
  /** Aborted when the attempt times out or the worker shuts down. */
  signal: AbortSignal;
  /** A logger bound to the message. */
  log: Logger;
}

/** A user transform: the payload to deliver, or null to deliver nothing. */
export type TransformFn = (message: TransformMessage, context: TransformContext) => unknown;

/** The default transform: deliver the payload unchanged. */
export const identityTransform: TransformFn = (message) => message.payload;

/** `TRANSFORM_MODULE_INVALID`: the module cannot be imported or exports no function. */
export class TransformModuleError extends ReseqError {
  override readonly name = 'TransformModuleError';
  constructor(path: string, detail: string, cause?: unknown) {
    super('TRANSFORM_MODULE_INVALID', `TRANSFORM_MODULE ${path}: ${detail}`, { context: { path }, cause });
  }
}

/**
 * Imports the transform module at `path` (relative to the working directory).
 * @throws {TransformModuleError} when it cannot be imported or exports no function.
 */
export async function loadTransform(path: string | undefined): Promise<TransformFn> {
  if (!path) return identityTransform;
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new TransformModuleError(path, `cannot be imported: ${(err as Error).message}`, err);
  }
  const fn = module.default ?? module.transform;
  if (typeof fn !== 'function') {
    throw new TransformModuleError(path, 'exports no function (expected `export default async function transform`)');
  }
  return fn as TransformFn;
}
