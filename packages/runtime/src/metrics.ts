/**
 * A per-app prom-client registry with the process default metrics. Each app registers its own
 * counters and histograms on it; nothing uses prom-client's global registry, so tests can run
 * several apps in one process.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

/** The registry of one app. */
export interface Metrics {
  registry: Registry;
}

/** Creates the registry of an app, labelled with the app's name. */
export function createMetrics(app: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry, prefix: 'reseq_' });
  return { registry };
}
