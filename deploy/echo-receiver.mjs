// The compose demo's destination: logs each delivery and flags anything out of order.
import { createServer } from 'node:http';

const last = new Map();
createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    const sequence = Number(req.headers['reseq-sequence']);
    const previous = last.get(req.url) ?? 0;
    const note = sequence === previous + 1 ? 'in order' : sequence === previous ? 'redelivery' : 'OUT OF ORDER';
    if (sequence > previous) last.set(req.url, sequence);
    console.log(`${req.url} #${sequence} ${note} ${req.headers['idempotency-key']} ${body}`);
    res.writeHead(200).end();
  });
}).listen(Number(process.env.PORT ?? 9001), () => console.log('demo destination listening'));
