/**
 * Entry point of the operator CLI (`pnpm reseq <command>`, or `node apps/cli/dist/main.js`).
 */
import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
});
// Leave once the output is flushed: after a failed connect, ioredis keeps a timer for up to 2 s.
process.exitCode = code;
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
