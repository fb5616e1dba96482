/**
 * The ingest app: a fastify server (routes/messages.ts) and a TCP server (tcp/tcp-ingest.ts)
 * that accept messages and make them durable in Redis, both through one intake
 * (accept-message.ts, then ingest-batcher.ts, then @reseq/store's ingest-store).
 * `buildIngest` takes the config and a logger and returns the started servers.
 */
import { readFileSync } from 'node:fs';
import type { ReseqConfig } from '@reseq/config';
import {
  createMetrics,
  evaluateReadiness,
  isReseqError,
  lazyChild,
  startOpsServer,
  startRoundTripProbe,
  toReseqError,
  type Logger,
  type OpsServer,
  type RunningApp,
} from '@reseq/runtime';
import { connectPipeline, isRedisReady } from '@reseq/store';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import { Counter } from 'prom-client';
import { createMessageIntake, type Sender } from './accept-message.js';
import { Authenticator } from './authenticator.js';
import {
  InvalidBodyError,
  MalformedJsonError,
  PayloadTooLargeError,
  RouteNotFoundError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from './errors.js';
import { answerClientError } from './client-error.js';
import { createIngestBatcher } from './ingest-batcher.js';
import { RateLimiter } from './rate-limiter.js';
import { startSources, type Sources } from './sources/start-sources.js';
import { describeValidation, registerMessagesRoute } from './routes/messages.js';
import { startTcpIngest, type TcpIngest } from './tcp/tcp-ingest.js';

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
  /** The TCP port it listens on; undefined when TCP_PORT=0 switched TCP ingest off (contract). */
  tcpPort: number | undefined;
  server: FastifyInstance;
}

/** Starts ingest: connects to Redis, then listens on HTTP_PORT and TCP_PORT. */
export async function buildIngest({ config, logger }: IngestOptions): Promise<Ingest> {
  const { shards, redis } = await connectPipeline(config.env, { name: 'ingest', logger, mode: 'fail-fast' });

  const { registry } = createMetrics('ingest');
  const accepted = new Counter({
    name: 'reseq_ingest_accepted_total',
    help: 'Messages accepted (202), per destination and source; client retries of an accepted id are not counted',
    labelNames: ['destination', 'source'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'reseq_ingest_rejected_total',
    help: 'Requests (HTTP) and lines (TCP) answered with an error, per error code and source',
    labelNames: ['code', 'source'],
    registers: [registry],
  });

  const batcher = createIngestBatcher(redis, shards, config.ingest);
  const probe = startRoundTripProbe({ ping: () => redis.ping(), registry });

  const readiness = { redis: () => isRedisReady(redis), accepting: () => !stopping };
  let stopping = false;

  const authenticator = new Authenticator(config.ingest.tokens);
  const rateLimiter = config.ingest.rateLimit
    ? new RateLimiter(config.ingest.rateLimit.perSecond, config.ingest.rateLimit.burst)
    : undefined;
  const intake = createMessageIntake({
    destinations: new Set(Object.keys(config.destinations)),
    batcher,
    accepted,
    isStopping: () => stopping,
    destinationWindow: config.ingest.destinationWindow,
    rateLimiter,
  });
  const tls = config.ingest.tls
    ? {
        cert: readFileSync(config.ingest.tls.cert),
        key: readFileSync(config.ingest.tls.key),
        ...(config.ingest.tls.ca ? { ca: readFileSync(config.ingest.tls.ca) } : {}),
      }
    : undefined;

  const httpLogger: FastifyBaseLogger = logger.child({ component: 'http' });
  // Typed as the plain HTTP instance: the routes and hooks are the same with TLS.
  const server = Fastify({
    ...(tls ? { https: tls } : {}),
    // Slow clients (slowloris): the whole request within requestTimeoutMs, checked every second
    // (node's default check runs every 30 s); a socket idle for as long is closed too.
    requestTimeout: config.ingest.requestTimeoutMs,
    connectionTimeout: config.ingest.requestTimeoutMs * 2,
    http: { connectionsCheckingInterval: 1000 },
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
    // Requests that break HTTP itself (431, bad framing, header timeouts) are answered below
    // the router; give them the same coded JSON body as every other error.
    clientErrorHandler: answerClientError,
  }) as unknown as FastifyInstance;
  server.server.maxConnections = config.ingest.maxConnections;
  // fastify gives every request a child logger (its reqId); most never log, so make it on first use.
  server.setChildLoggerFactory((logger, bindings) => lazyChild(logger as Logger, bindings));

  // Authentication (where tokens are configured) before the body is even parsed.
  const senders = new WeakMap<FastifyRequest, Sender>();
  const seenSources = new Set<string>();
  server.addHook('onRequest', (request, _reply, done) => {
    if (request.method !== 'POST' || request.routeOptions.url !== '/v1/messages') {
      done();
      return;
    }
    if (!authenticator.enabled) {
      senders.set(request, { source: 'anonymous', rateKey: request.ip });
      done();
      return;
    }
    const source = authenticator.sourceOfHeader(request.headers.authorization);
    if (source === undefined) {
      request.log.warn({ remote: request.ip }, 'http request refused: missing or unknown ingest token');
      done(new UnauthorizedError());
      return;
    }
    request.log = lazyChild(request.log as Logger, { source });
    if (!seenSources.has(source)) {
      seenSources.add(source);
      request.log.info('http source authenticated');
    }
    senders.set(request, { source, rateKey: `source:${source}` });
    done();
  });
  // Every body is parsed as JSON whatever its content type (clients that send text/plain or
  // forget the header still send JSON), with fastify's prototype-poisoning protection.
  // The body is decoded strictly: invalid UTF-8 is malformed JSON, not silently replaced by U+FFFD.
  const parseJson = server.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch (err) {
      done(new MalformedJsonError(err), undefined);
      return;
    }
    void parseJson(request, text, done);
  });

  server.setNotFoundHandler((request) => {
    throw new RouteNotFoundError(request.method, request.url);
  });
  server.setErrorHandler((error: FastifyError, request, reply) => {
    let coded;
    if (isReseqError(error)) coded = error;
    else if (error.validation) coded = new InvalidBodyError(describeValidation(error.validation));
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      coded = new PayloadTooLargeError(config.ingest.maxMessageBytes);
    else if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || error.statusCode === 415)
      coded = new UnsupportedMediaTypeError(String(request.headers['content-type']));
    else if (error.statusCode === 400 || error instanceof SyntaxError) coded = new MalformedJsonError(error);
    else coded = toReseqError(error);
    rejected.inc({ code: coded.code, source: senders.get(request)?.source ?? 'unauthenticated' });
    if (coded.statusCode >= 500 && !EXPECTED_503.has(coded.code)) {
      request.log.error({ err: error }, 'request failed');
    }
    const retryAfter = coded.context.retryAfterSeconds;
    if (coded.retryable) void reply.header('retry-after', typeof retryAfter === 'number' ? String(retryAfter) : '1');
    void reply.code(coded.statusCode).send(coded.toJSON());
  });

  // While stopping, close each connection after its answer: server.close() would otherwise
  // wait for clients to let go of kept-alive connections (up to the keep-alive timeout, 72 s).
  server.addHook('onSend', (_request, reply, payload, done) => {
    if (stopping) void reply.header('connection', 'close');
    done(null, payload);
  });

  registerMessagesRoute(server, {
    intake,
    senderOf: (request) => senders.get(request) ?? { source: 'anonymous', rateKey: request.ip },
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

  // Node keeps only the first 1,000 header lines by default and drops the rest silently (a
  // Content-Length among them would lose the body); the 16 KiB header size limit still applies.
  server.server.maxHeadersCount = 0;
  await server.listen({ port: config.env.HTTP_PORT, host: '0.0.0.0' });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : config.env.HTTP_PORT;
  let ops: OpsServer | undefined;
  if (config.env.METRICS_PORT !== undefined) {
    ops = await startOpsServer({ port: config.env.METRICS_PORT, registry, readiness });
  }
  // TCP_PORT=0 switches TCP ingest off (the contract); HTTP_PORT=0 picks a free port.
  const tcp: TcpIngest | undefined =
    config.env.TCP_PORT === 0
      ? undefined
      : await startTcpIngest({
          port: config.env.TCP_PORT,
          intake,
          authenticator,
          rejected,
          logger: logger.child({ component: 'tcp' }),
          maxMessageBytes: config.ingest.maxMessageBytes,
          maxConnections: config.ingest.maxConnections,
          maxPending: config.ingest.maxPendingPerConnection,
          idleTimeoutMs: config.ingest.idleTimeoutMs,
          isStopping: () => stopping,
          tls,
        });
  // Queues producers already write to (config `sources`), each consumed by one ingest at a time.
  const sources: Sources = startSources({
    sources: config.sources,
    redis,
    // Source leases are pipeline-wide: they live on the pipeline's own tag, whatever the shards.
    keys: shards.home,
    intake,
    maxMessageBytes: config.ingest.maxMessageBytes,
    logger,
  });
  logger.info(
    {
      port,
      tcpPort: tcp?.port ?? null,
      tls: tls !== undefined,
      destinations: Object.keys(config.destinations),
      shards: shards.count,
    },
    'ingest listening',
  );

  return {
    port,
    tcpPort: tcp?.port,
    server,
    async stop() {
      probe.stop();
      // Sources first: the job in hand is completed (or left to the next holder) and the leases
      // are given back while the intake still takes messages.
      await sources.stop();
      stopping = true;
      // Stop accepting, let in-flight requests and lines finish (their writes are awaited), then close.
      await Promise.all([server.close(), tcp?.stop()]);
      await batcher.drain();
      await ops?.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
