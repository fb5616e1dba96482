#!/usr/bin/env node
// A runnable reference receiver for TCP destinations (see docs/protocol.md, "Delivery over TCP"):
// listens, acks every message line, ignores repeats, and prints each message it takes as one
// JSON line on stdout. Build first (`npx tsc -b`).
//   node examples/tcp-receiver.mjs [--port 9002] [--host 127.0.0.1] [--ack-batch 1]
import { parseArgs } from 'node:util';
import { startTcpReceiver } from '../packages/delivery/dist/index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9002' },
    host: { type: 'string', default: '127.0.0.1' },
    'ack-batch': { type: 'string', default: '1' },
  },
});

const receiver = await startTcpReceiver({
  port: Number(values.port),
  host: values.host,
  ackBatch: Number(values['ack-batch']),
  cumulativeAcks: Number(values['ack-batch']) > 1,
  onLine: (line) => {
    if (!line.taken) return;
    const { destination, sequence, id, payload } = line;
    process.stdout.write(`${JSON.stringify({ destination, sequence, id, payload })}\n`);
  },
});
process.stderr.write(`tcp receiver listening on ${values.host}:${receiver.port}\n`);
for (const signal of ['SIGINT', 'SIGTERM'])
  process.once(signal, () => void receiver.close().then(() => process.exit(0)));
