/**
 * Process plumbing shared by the three apps: the pino root logger, the coded error base
 * class, backoff with jitter, the ops HTTP server (/metrics, /healthz, /readyz) and the
 * SIGTERM lifecycle. Nothing here knows about messages or Redis.
 */
export { createLogger, lazyChild, maskUrlPassword, type Logger, type LoggerOptions } from './logger.js';
export { ReseqError, isReseqError, toReseqError, type ReseqErrorOptions } from './errors.js';
export { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
export { untilAborted } from './until-aborted.js';
export {
  startOpsServer,
  evaluateReadiness,
  type OpsServer,
  type OpsRoute,
  type OpsServerOptions,
  type ReadinessCheck,
} from './ops-server.js';
export { createMetrics, type Metrics } from './metrics.js';
export { runApp, type RunningApp } from './lifecycle.js';
export { faultPoint } from './fault-point.js';
export { MicroBatcher, type BatchWrite } from './micro-batcher.js';
export {
  startRoundTripProbe,
  ROUND_TRIP_INTERVAL_MS,
  type RoundTripProbe,
  type RoundTripProbeOptions,
} from './round-trip-probe.js';
