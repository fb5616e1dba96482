/**
 * `POST /v1/messages`: where a message enters reseq. The body is validated by a JSON schema
 * (compiled by fastify's ajv), the destinations are checked against the config, and the
 * message is handed to the batcher; 202 is answered only once it is durable in Redis.
 */
import { randomUUID } from 'node:crypto';
import { DESTINATION_NAME_PATTERN, MESSAGE_ID_PATTERN } from '@reseq/config';
import type { FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';
import { DestinationBacklogFullError, ShuttingDownError, UnknownDestinationError } from '../errors.js';
import type { IngestBatcher } from '../ingest-batcher.js';

/** Most destinations one message may name. */
export const MAX_DESTINATIONS_PER_MESSAGE = 64;

const destinationName = { type: 'string', pattern: DESTINATION_NAME_PATTERN.source } as const;

/** The message body, as the contract defines it. */
export const messageBodySchema = {
  type: 'object',
  properties: {
    destination: destinationName,
    destinations: {
      type: 'array',
      items: destinationName,
      minItems: 1,
      maxItems: MAX_DESTINATIONS_PER_MESSAGE,
      uniqueItems: true,
    },
    payload: {},
    id: { type: 'string', pattern: MESSAGE_ID_PATTERN.source },
  },
  required: ['payload'],
  oneOf: [{ required: ['destination'] }, { required: ['destinations'] }],
  additionalProperties: false,
} as const;

/** One ajv error, as fastify reports it. */
interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Turns the schema's findings into one sentence a client can act on. */
export function describeValidation(issues: readonly ValidationIssue[]): string {
  const destinationChoice = issues.some(
    (i) =>
      i.keyword === 'oneOf' || (i.keyword === 'required' && String(i.params.missingProperty).startsWith('destination')),
  );
  const rest = issues.filter(
    (i) =>
      i.keyword !== 'oneOf' &&
      !(i.keyword === 'required' && String(i.params.missingProperty).startsWith('destination')),
  );
  const parts = rest.map((i) => {
    if (i.keyword === 'additionalProperties') return `unknown field "${String(i.params.additionalProperty)}"`;
    const field = i.instancePath ? i.instancePath.slice(1).replace(/\//g, '.') : 'body';
    return `${field} ${i.message ?? 'is invalid'}`;
  });
  if (destinationChoice && rest.length === 0) parts.push('give exactly one of "destination" or "destinations"');
  return parts.join('; ');
}

interface MessageBody {
  destination?: string;
  destinations?: string[];
  payload: unknown;
  id?: string;
}

/** What the route needs from the app. */
export interface MessagesRouteOptions {
  destinations: ReadonlySet<string>;
  batcher: IngestBatcher;
  accepted: Counter<'destination'>;
  isStopping: () => boolean;
  /** The configured destination window (for the 429's message). */
  destinationWindow: number;
}

/** Registers `POST /v1/messages`. */
export function registerMessagesRoute(app: FastifyInstance, options: MessagesRouteOptions): void {
  app.post<{ Body: MessageBody }>('/v1/messages', { schema: { body: messageBodySchema } }, async (request, reply) => {
    if (options.isStopping()) throw new ShuttingDownError();
    const body = request.body;
    const destinations = body.destinations ?? [body.destination!];
    const unknown = destinations.filter((d) => !options.destinations.has(d));
    if (unknown.length > 0) throw new UnknownDestinationError(unknown);
    const id = body.id ?? randomUUID();
    const outcome = await options.batcher.submit({
      id,
      clientId: body.id !== undefined,
      destinations,
      payload: JSON.stringify(body.payload),
    });
    if (outcome.windowFull) throw new DestinationBacklogFullError(outcome.windowFull, options.destinationWindow);
    if (!outcome.duplicate) for (const d of destinations) options.accepted.inc({ destination: d });
    return reply.code(202).send({ id, sequences: outcome.sequences });
  });
}
