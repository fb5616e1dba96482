/**
 * Entry point of the resequencer-sender (`node apps/resequencer-sender/dist/main.js`).
 */
import { loadConfig } from '@reseq/config';
import { createLogger, runApp } from '@reseq/runtime';
import { buildSender } from './build-app.js';

const logger = createLogger({ app: 'resequencer-sender', level: process.env.LOG_LEVEL });
await runApp(logger, async () => buildSender({ config: loadConfig(), logger }));
