/**
 * Entry point of ingest (`node apps/ingest/dist/main.js`): reads the environment and the
 * config file, starts the server, and stops it gracefully on SIGTERM.
 */
import { loadConfig } from '@reseq/config';
import { createLogger, runApp } from '@reseq/runtime';
import { buildIngest } from './build-app.js';

const logger = createLogger({ app: 'ingest', level: process.env.LOG_LEVEL });
await runApp(logger, async () => buildIngest({ config: loadConfig(), logger }));
