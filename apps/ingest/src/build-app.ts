/**
 * The ingest app: a fastify server that accepts messages over HTTP and makes them durable in
 * Redis (see routes/messages.ts, then ingest-batcher.ts, then @reseq/store's ingest-store).
 * `buildIngest` takes the config and a logger and returns a started server.
 */
import type { ReseqConfig } from '@reseq/config';
import {
  createMetrics,
  evaluateReadiness,
  isReseqError,
  startOpsServer,
  toReseqError,
  type Logger,
  type OpsServer,
  type RunningApp,
} from '@reseq/runtime';
import { connectRedis, createRedis, isRedisReady, KeySchema, redisTarget, type ReseqRedis } from '@reseq/store';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { InvalidBodyError, MalformedJsonError, PayloadTooLargeError, RouteNotFoundError } from './errors.js';
import { createIngestBatcher } from './ingest-batcher.js';
import { describeValidation, registerMessagesRoute } from './routes/messages.js';

/** Retryable answers that are expected while Redis or ingest is unavailable: not logged as errors. */
const EXPECTED_503 = new Set(['REDIS_UNAVAILABLE', 'REDIS_REPLICAS_UNAVAILABLE', 'INGEST_SHUTTING_DOWN']);

/** Options of {@link buildIngest}. */
export interface IngestOptions {
  config: ReseqConfig;
  logger: Logger;
}

/** A started ingest. */
export interface Ingest extends RunningApp {
  /** The HTTP port it listens on (useful with HTTP_PORT=0). */
  port: number;
  server: FastifyInstance;
}

/** Starts ingest: connects to Redis, then listens on HTTP_PORT. */
export async function buildIngest({ config, logger }: IngestOptions): Promise<Ingest> {
  const keys = new KeySchema(config.env.RESEQ_PREFIX);
  const redis: ReseqRedis = createRedis({ target: redisTarget(config.env), name: 'ingest', logger, mode: 'fail-fast' });
  await connectRedis(redis);

  const { registry } = createMetrics('ingest');
  const accepted = new Counter({
    name: 'reseq_ingest_accepted_total',
    help: 'Messages accepted (202), per destination; client retries of an accepted id are not counted',
    labelNames: ['destination'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'reseq_ingest_rejected_total',
    help: 'Requests answered with an error, per error code',
    labelNames: ['code'],
    registers: [registry],
  });

  const batcher = createIngestBatcher(redis, keys, config.ingest);

  const readiness = { redis: () => isRedisReady(redis), accepting: () => !stopping };
  let stopping = false;

  const httpLogger: FastifyBaseLogger = logger.child({ component: 'http' });
  const server = Fastify({
    loggerInstance: httpLogger,
    // One log line per request would cost more than the request at 20,000 messages a second.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.ingest.maxMessageBytes,
    // Not fastify's own 503 (no code, no Retry-After): while stopping, the route answers
    // INGEST_SHUTTING_DOWN (see routes/messages.ts).
    return503OnClosing: false,
    // fastify's ajv coerces types by default (`"id": 42` would pass as "42", `"destinations":
    // "a"` as ["a"]) and silently drops unknown fields; the contract calls such bodies invalid.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  // Every body is parsed as JSON whatever its content type (clients that send text/plain or
  // forget the header still send JSON), with fastify's prototype-poisoning protection.
  const parseJson = server.getDefaultJsonParser('error', 'error');
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', { parseAs: 'string' }, parseJson);

  server.setNotFoundHandler((request) => {
    throw new RouteNotFoundError(request.method, request.url);
  });
  server.setErrorHandler((error: FastifyError, request, reply) => {
    let coded;
    if (isReseqError(error)) coded = error;
    else if (error.validation) coded = new InvalidBodyError(describeValidation(error.validation));
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      coded = new PayloadTooLargeError(config.ingest.maxMessageBytes);
    else if (error.statusCode === 400 || error instanceof SyntaxError) coded = new MalformedJsonError(error);
    else coded = toReseqError(error);
    rejected.inc({ code: coded.code });
    if (coded.statusCode >= 500 && !EXPECTED_503.has(coded.code)) {
      request.log.error({ err: error }, 'request failed');
    }
    if (coded.retryable) void reply.header('retry-after', '1');
    void reply.code(coded.statusCode).send(coded.toJSON());
  });

  // While stopping, close each connection after its answer: server.close() would otherwise
  // wait for clients to let go of kept-alive connections (up to the keep-alive timeout, 72 s).
  server.addHook('onSend', (_request, reply, payload, done) => {
    if (stopping) void reply.header('connection', 'close');
    done(null, payload);
  });

  registerMessagesRoute(server, {
    destinations: new Set(Object.keys(config.destinations)),
    batcher,
    accepted,
    isStopping: () => stopping,
    destinationWindow: config.ingest.destinationWindow,
  });
  server.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  server.get('/readyz', async (_request, reply) => {
    const result = await evaluateReadiness(readiness);
    return reply
      .code(result.ready ? 200 : 503)
      .send({ status: result.ready ? 'ready' : 'not ready', checks: result.checks });
  });
  server.get('/metrics', async (_request, reply) =>
    reply.header('content-type', registry.contentType).send(await registry.metrics()),
  );

  await server.listen({ port: config.env.HTTP_PORT, host: '0.0.0.0' });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : config.env.HTTP_PORT;
  let ops: OpsServer | undefined;
  if (config.env.METRICS_PORT !== undefined) {
    ops = await startOpsServer({ port: config.env.METRICS_PORT, registry, readiness });
  }
  if (config.env.TCP_PORT !== 0) {
    logger.info({ tcpPort: config.env.TCP_PORT }, 'TCP ingest is not part of this version; only HTTP is served');
  }
  logger.info({ port, destinations: Object.keys(config.destinations) }, 'ingest listening');

  return {
    port,
    server,
    async stop() {
      stopping = true;
      // Stop accepting, let in-flight requests finish (their writes are awaited), then close.
      await server.close();
      await batcher.drain();
      await ops?.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
