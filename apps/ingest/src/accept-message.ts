/**
 * Step 1 of a message at ingest, the same for HTTP and TCP: the parsed body is validated by the
 * message schema, the source's rate is checked, the destinations are checked against the config,
 * and the message goes to the batcher (ingest-batcher.ts). The answer is `{ id, sequences }`
 * once it is durable in Redis, or one of the coded errors of errors.ts.
 */
import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import type { Counter } from 'prom-client';
import {
  DestinationBacklogFullError,
  InvalidBodyError,
  PayloadTooDeepError,
  RateLimitedError,
  ShuttingDownError,
  UnknownDestinationError,
} from './errors.js';
import type { IngestBatcher } from './ingest-batcher.js';
import type { RateLimiter } from './rate-limiter.js';
import { describeValidation, messageBodySchema } from './routes/messages.js';

/** The body of one message, once it passed the schema. */
export interface MessageBody {
  destination?: string;
  destinations?: string[];
  payload: unknown;
  id?: string;
}

/** What ingest answers for an accepted message. */
export interface Accepted {
  id: string;
  sequences: Record<string, number>;
}

/** Who sent a message: the authenticated source (if tokens are configured) and the rate key. */
export interface Sender {
  /** The source's name, or `anonymous` where no tokens are configured. */
  source: string;
  /** What the rate limit counts by: the source, or the remote address without tokens. */
  rateKey: string;
}

/** What {@link createMessageIntake} needs from the app. */
export interface MessageIntakeOptions {
  destinations: ReadonlySet<string>;
  batcher: IngestBatcher;
  accepted: Counter<'destination' | 'source'>;
  isStopping: () => boolean;
  /** The configured destination window (for the 429's message). */
  destinationWindow: number;
  /** Absent: no rate limit. */
  rateLimiter?: RateLimiter;
}

/** Accepts one parsed message body; throws the coded errors of errors.ts. */
export type MessageIntake = (body: unknown, sender: Sender) => Promise<Accepted>;

/**
 * The same options as fastify's ajv, except that types are not coerced (`"id": 42` is not the
 * string "42") and unknown fields are reported, not dropped: the contract calls both invalid.
 */
const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false });
const validateBody = ajv.compile<MessageBody>(messageBodySchema);

/** Validates a body against the message schema; throws {@link InvalidBodyError}. */
export function assertMessageBody(body: unknown): asserts body is MessageBody {
  if (!validateBody(body)) throw new InvalidBodyError(describeValidation(validateBody.errors ?? []));
}

/** Deepest nesting of arrays and objects a payload may have. */
export const MAX_PAYLOAD_DEPTH = 2000;

/**
 * Throws {@link PayloadTooDeepError} when `value` nests deeper than `limit` (iteratively: no
 * stack), and {@link InvalidBodyError} for a number too large for a double (JSON.parse makes
 * `1e400` Infinity, which would be delivered as null).
 */
function assertPayload(value: unknown, limit: number): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node === 'number' && !Number.isFinite(node)) {
      throw new InvalidBodyError('payload holds a number too large to represent (beyond ±1.8e308)');
    }
    if (node === null || typeof node !== 'object') continue;
    if (depth > limit) throw new PayloadTooDeepError(limit);
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if ((child !== null && typeof child === 'object') || typeof child === 'number') stack.push([child, depth + 1]);
    }
  }
}

/** Creates the intake shared by the HTTP route and the TCP server. */
export function createMessageIntake(options: MessageIntakeOptions): MessageIntake {
  return async (body, sender) => {
    assertMessageBody(body);
    if (options.isStopping()) throw new ShuttingDownError();
    if (options.rateLimiter) {
      const waitSeconds = options.rateLimiter.take(sender.rateKey);
      if (waitSeconds > 0) throw new RateLimitedError(waitSeconds);
    }
    const destinations = body.destinations ?? [body.destination!];
    const unknown = destinations.filter((d) => !options.destinations.has(d));
    if (unknown.length > 0) throw new UnknownDestinationError(unknown);
    const id = body.id ?? randomUUID();
    assertPayload(body.payload, MAX_PAYLOAD_DEPTH);
    let payload: string;
    try {
      payload = JSON.stringify(body.payload);
    } catch {
      // Beyond what the depth check catches, a payload this engine cannot encode is refused.
      throw new PayloadTooDeepError(MAX_PAYLOAD_DEPTH);
    }
    const outcome = await options.batcher.submit({
      id,
      clientId: body.id !== undefined,
      destinations,
      payload,
    });
    // A shard that holds some of its destinations failed (several shards only): no 202.
    if (outcome.refused !== undefined) throw outcome.refused;
    if (outcome.windowFull) throw new DestinationBacklogFullError(outcome.windowFull, options.destinationWindow);
    if (!outcome.duplicate) {
      for (const d of destinations) options.accepted.inc({ destination: d, source: sender.source });
    }
    return { id, sequences: outcome.sequences };
  };
}
