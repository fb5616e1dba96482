/**
 * Times a round trip to Redis (a PING) now and then, into the `reseq_redis_round_trip_seconds`
 * histogram of an app: what every command of the app pays on top of its own work. A failed
 * PING is not observed (`/readyz` reports the outage); the probe goes on.
 */
import { Histogram, type Registry } from 'prom-client';

/** Options of {@link startRoundTripProbe}. */
export interface RoundTripProbeOptions {
  /** One round trip, e.g. `() => redis.ping()`. */
  ping: () => Promise<unknown>;
  registry: Registry;
  /** How often to measure, in ms; default 5000. */
  intervalMs?: number;
}

/** A running probe. */
export interface RoundTripProbe {
  stop(): void;
}

/** Default of {@link RoundTripProbeOptions.intervalMs}. */
export const ROUND_TRIP_INTERVAL_MS = 5000;

/** Registers the histogram and measures once at start, then every `intervalMs`. */
export function startRoundTripProbe({
  ping,
  registry,
  intervalMs = ROUND_TRIP_INTERVAL_MS,
}: RoundTripProbeOptions): RoundTripProbe {
  const histogram = new Histogram({
    name: 'reseq_redis_round_trip_seconds',
    help: 'Round-trip time of a PING to Redis, measured periodically by this process',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  let busy = false;
  const measure = (): void => {
    if (busy) return;
    busy = true;
    const started = performance.now();
    ping().then(
      () => {
        histogram.observe((performance.now() - started) / 1000);
        busy = false;
      },
      () => {
        busy = false;
      },
    );
  };
  measure();
  const timer = setInterval(measure, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
