/**
 * Entry point of the transform worker (`node apps/transform-worker/dist/main.js`).
 */
import { loadConfig } from '@reseq/config';
import { createLogger, runApp } from '@reseq/runtime';
import { buildWorker } from './build-app.js';

const logger = createLogger({ app: 'transform-worker', level: process.env.LOG_LEVEL });
await runApp(logger, async () => buildWorker({ config: loadConfig(), logger }));
