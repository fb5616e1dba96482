/**
 * `POST /v1/messages`: where a message enters reseq over HTTP. The parsed body goes to the
 * intake shared with TCP (accept-message.ts: the JSON schema below, the destinations, the
 * batcher); 202 is answered only once the message is durable in Redis.
 */
import { DESTINATION_NAME_PATTERN, MESSAGE_ID_PATTERN } from '@reseq/config';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { MessageIntake, Sender } from '../accept-message.js';

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

/** One ajv error. */
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

/** What the route needs from the app. */
export interface MessagesRouteOptions {
  intake: MessageIntake;
  /** Who sent a request (set by the auth hook of build-app.ts). */
  senderOf: (request: FastifyRequest) => Sender;
}

/** Registers `POST /v1/messages`: the body is validated by the intake, not by fastify. */
export function registerMessagesRoute(app: FastifyInstance, options: MessagesRouteOptions): void {
  app.post('/v1/messages', async (request, reply) => {
    const accepted = await options.intake(request.body, options.senderOf(request));
    return reply.code(202).send(accepted);
  });
}
