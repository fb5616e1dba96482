/**
 * What every message of a run is, decided before the run from its index alone: its destination
 * and how long its transform takes. The planned duration travels in the payload, so the same
 * message takes the same time in every system, and the ideal ordered latency can be computed
 * from the trace afterwards.
 */

/** How long transforms take in a scenario. */
export type DurationModel =
  | { kind: 'noop' }
  | { kind: 'fixed'; ms: number }
  | { kind: 'uniform'; minMs: number; maxMs: number }
  /**
   * Uniform, except that a `share` of messages run `factor` times longer on their first run; a
   * second run of the same message (a hedge) takes the ordinary time.
   */
  | { kind: 'tail'; minMs: number; maxMs: number; share: number; factor: number };

/** One planned message. */
export interface PlannedMessage {
  /** The run's message index, 0, 1, 2, …; also the payload's `k`. */
  k: number;
  /** Index into the run's destination list. */
  destination: number;
  /** Planned transform time of the message's first run, in ms. */
  ms: number;
  /** Planned time of any later run of the same message (heavy tail only), in ms. */
  retryMs?: number;
}

/** The payload a message carries; the transform returns it unchanged. */
export interface BenchPayload {
  k: number;
  ms: number;
  retryMs?: number;
}

/**
 * A number in [0, 1) from (seed, k, stream): a 32-bit hash (splitmix32-style) of the three,
 * so message k's draw does not depend on which other messages were drawn before it.
 */
export function unitRandom(seed: number, k: number, stream: number): number {
  let x = (seed ^ Math.imul(k + 1, 0x9e3779b9) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 2 ** 32;
}

/** Plans message `k` of a run with `destinations` destinations (round robin). */
export function planMessage(k: number, model: DurationModel, destinations: number, seed: number): PlannedMessage {
  const destination = k % destinations;
  switch (model.kind) {
    case 'noop':
      return { k, destination, ms: 0 };
    case 'fixed':
      return { k, destination, ms: model.ms };
    case 'uniform':
      return { k, destination, ms: uniformMs(model.minMs, model.maxMs, unitRandom(seed, k, 0)) };
    case 'tail': {
      const ms = uniformMs(model.minMs, model.maxMs, unitRandom(seed, k, 0));
      if (unitRandom(seed, k, 1) >= model.share) return { k, destination, ms };
      return { k, destination, ms: ms * model.factor, retryMs: ms };
    }
  }
}

/** The payload of a planned message. */
export function payloadOf(message: PlannedMessage): BenchPayload {
  return message.retryMs === undefined
    ? { k: message.k, ms: message.ms }
    : { k: message.k, ms: message.ms, retryMs: message.retryMs };
}

/** The median planned duration of a model (what hedging is set against). */
export function medianMs(model: DurationModel): number {
  switch (model.kind) {
    case 'noop':
      return 0;
    case 'fixed':
      return model.ms;
    case 'uniform':
    case 'tail':
      return (model.minMs + model.maxMs) / 2;
  }
}

function uniformMs(min: number, max: number, u: number): number {
  return Math.round(min + (max - min) * u);
}
