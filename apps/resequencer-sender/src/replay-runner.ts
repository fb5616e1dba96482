/**
 * Runs a destination's replay (`reseq replay <destination> --from <sequence>`) inside its lane,
 * so "one active sender, in order" holds: the lane stops taking new sequences, delivers the
 * retained history from `from` up to its delivered position again, in order, one at a time,
 * through the same delivery adapter (so each message carries its original Idempotency-Key),
 * then carries on. Progress is kept in Redis under the lease, so a replay that a stop, a crash
 * or a pause interrupts goes on from where it was, under whichever sender holds the lane next.
 */
import type { DestinationConfig } from '@reseq/config';
import type { Delivery } from '@reseq/delivery';
import { backoffDelay, sleep, type Logger } from '@reseq/runtime';
import { readHistory, replayStep, type KeySchema, type ReplayRequest, type ReseqRedis } from '@reseq/store';
import { LEASE_WAIT_MS } from './batch-step.js';

/** Retained values read from the history per round trip. */
const PAGE = 64;

/** What a replay needs from its lane. */
export interface ReplayDeps {
  destination: string;
  config: DestinationConfig;
  delivery: Delivery;
  redis: ReseqRedis;
  keys: KeySchema;
  logger: Logger;
  leaseValue: string;
  /** The lane's delivered position (where the replay ends, unless an earlier holder fixed it). */
  delivered: number;
  /** Whether the lease is still safely the lane's by the local clock. */
  leaseValid: () => boolean;
  /** Whether an operator paused the destination meanwhile (read at most once a second). */
  paused: () => Promise<boolean>;
  /** Aborts when the lane stops. */
  stopping: AbortSignal;
  /** Aborts when the lease is lost: an in-flight request is abandoned. */
  lost: AbortSignal;
}

/**
 * How a replay run ended. `done`: delivered, request deleted (`gone`: an operator deleted it
 * meanwhile). `paused`, `stopped`: interrupted; the request stays and the lane takes it up
 * again later. `fenced`: the lease is lost.
 */
export type ReplayEnd = 'done' | 'gone' | 'paused' | 'stopped' | 'fenced';

/** Delivers one replay request's retained history again, in order. */
export async function runReplay(deps: ReplayDeps, request: ReplayRequest): Promise<ReplayEnd> {
  const { redis, keys, destination, leaseValue } = deps;
  const log = deps.logger.child({ replay: request.id });
  const started = await replayStep(redis, keys, destination, leaseValue, request.id, 'start', deps.delivered);
  if (started.outcome !== 'ok') return started.outcome;
  const { from, to } = started;
  let next = started.next;
  log.info({ from, to, next }, 'replay started: delivering the retained history again, in order');
  let replayed = 0;
  let refused = 0;
  while (next <= to) {
    const page = await readHistory(redis, keys, destination, next, to, PAGE);
    if (page.length === 0) break;
    for (const result of page) {
      if (await deps.paused()) {
        log.info({ next: result.sequence }, 'replay paused with its destination; it goes on once resumed');
        return 'paused';
      }
      const outcome = await send(deps, log, {
        destination,
        sequence: result.sequence,
        messageId: result.id,
        payload: result.body,
      });
      if (outcome === 'stopped') return 'stopped';
      if (outcome === 'refused') refused++;
      else replayed++;
      next = result.sequence + 1;
      const step = await replayStep(redis, keys, destination, leaseValue, request.id, 'next', next);
      if (step.outcome !== 'ok') return step.outcome;
    }
  }
  const done = await replayStep(redis, keys, destination, leaseValue, request.id, 'done');
  if (done.outcome !== 'ok') return done.outcome;
  log.info({ from, to, replayed, refused }, 'replay done; delivery goes on');
  return 'done';
}

/**
 * Delivers one retained message again, retrying as a normal delivery does. A destination that
 * refuses it for good (a 4xx) had taken it before: the refusal is logged, the replay goes on.
 */
async function send(
  deps: ReplayDeps,
  log: Logger,
  request: { destination: string; sequence: number; messageId: string; payload: string },
): Promise<'delivered' | 'refused' | 'stopped'> {
  for (let attempt = 1; ; attempt++) {
    if (deps.stopping.aborted) return 'stopped';
    // As for every delivery: never start a send on a lease that may have run out.
    if (!deps.leaseValid()) {
      await sleep(LEASE_WAIT_MS, deps.stopping);
      attempt--;
      continue;
    }
    const outcome = await deps.delivery.send(request, deps.lost, deps.leaseValid);
    if (deps.lost.aborted) return 'stopped';
    if (outcome.ok) return 'delivered';
    if (!outcome.retryable) {
      log.error(
        { sequence: request.sequence, error: outcome.error },
        'destination refused a replayed message; the replay goes on',
      );
      return 'refused';
    }
    const delay = Math.max(outcome.retryAfterMs ?? 0, backoffDelay(attempt, deps.config.retry));
    if (attempt === 1 || attempt % 10 === 0) {
      log.warn(
        { sequence: request.sequence, attempt, error: outcome.error, retryInMs: delay },
        'replayed delivery failed; retrying',
      );
    }
    await sleep(delay, deps.stopping);
  }
}
