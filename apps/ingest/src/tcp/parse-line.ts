/**
 * Parses one TCP line the way fastify parses an HTTP body: strict UTF-8, JSON, and no
 * `__proto__` or `constructor.prototype` keys (prototype poisoning), each answered as malformed.
 */
import { MalformedJsonError } from '../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The JSON value of a line; throws {@link MalformedJsonError}. */
export function parseLine(line: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch (err) {
    throw new MalformedJsonError(err);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MalformedJsonError(err);
  }
  if ((text.includes('__proto__') || text.includes('constructor')) && hasPoisonedKey(value)) {
    throw new MalformedJsonError(new SyntaxError('Object contains forbidden prototype property'));
  }
  return value;
}

/** Walks the value without recursion (a deeply nested line must not overflow the stack). */
function hasPoisonedKey(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) return true;
    const ctor = (node as Record<string, unknown>).constructor;
    if (
      Object.prototype.hasOwnProperty.call(node, 'constructor') &&
      typeof ctor === 'object' &&
      ctor !== null &&
      Object.prototype.hasOwnProperty.call(ctor, 'prototype')
    ) {
      return true;
    }
    for (const child of Object.values(node)) stack.push(child);
  }
  return false;
}
