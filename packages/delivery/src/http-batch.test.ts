import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { HttpDestinationConfig } from '@reseq/config';
import { verifyWebhook } from '@reseq/webhook-verify';
import type { DeliveryRequest } from './delivery.js';
import { batchIdempotencyKey, encodeBatchBody } from './http-batch.js';
import { HttpDelivery } from './http-delivery.js';

const request = (sequence: number, payload = `{"n":${sequence}}`, messageId = `m${sequence}`): DeliveryRequest => ({
  destination: 'billing',
  sequence,
  messageId,
  payload,
});

/** What a receiver got: headers and the body as received. */
interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server | undefined;
let delivery: HttpDelivery | undefined;
afterEach(async () => {
  await delivery?.close();
  if (server) {
    server.closeAllConnections();
    server.close();
  }
  server = delivery = undefined;
});

/** A receiver answering `status` to everything; resolves with where it listens. */
async function receiver(received: Received[], status = 200): Promise<string> {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`;
}

function config(url: string, overrides: Partial<HttpDestinationConfig> = {}): HttpDestinationConfig {
  return {
    type: 'http',
    url,
    onDeadLetter: 'block',
    timeoutMs: 2_000,
    headers: {},
    retry: { baseMs: 10, maxMs: 100 },
    ...overrides,
  };
}

const RESEQ_HEADERS = ['content-type', 'idempotency-key', 'reseq-sequence', 'reseq-sequence-last', 'reseq-message-id'];
const reseqHeaders = (headers: IncomingHttpHeaders) =>
  Object.fromEntries(RESEQ_HEADERS.filter((h) => h in headers).map((h) => [h, headers[h]]));

describe('batch body and key', () => {
  it('puts each message in order with its sequence, id and key, the payload as the JSON text it is', () => {
    const body = encodeBatchBody([request(4, '{"a": [1, 2]}'), request(5, '"x"', 'id "quoted"'), request(7, 'null')]);
    expect(body).toBe(
      '[{"sequence":4,"id":"m4","idempotencyKey":"billing:4:m4","payload":{"a": [1, 2]}},' +
        '{"sequence":5,"id":"id \\"quoted\\"","idempotencyKey":"billing:5:id \\"quoted\\"","payload":"x"},' +
        '{"sequence":7,"id":"m7","idempotencyKey":"billing:7:m7","payload":null}]',
    );
    expect(JSON.parse(body)).toEqual([
      { sequence: 4, id: 'm4', idempotencyKey: 'billing:4:m4', payload: { a: [1, 2] } },
      { sequence: 5, id: 'id "quoted"', idempotencyKey: 'billing:5:id "quoted"', payload: 'x' },
      { sequence: 7, id: 'm7', idempotencyKey: 'billing:7:m7', payload: null },
    ]);
    expect(() => encodeBatchBody([])).toThrow(RangeError);
  });

  it('names a batch by its destination and range, unlike any single key', () => {
    expect(batchIdempotencyKey('billing', 4, 9)).toBe('billing:4-9');
  });
});

describe('HttpDelivery with batch', () => {
  it('without batch (or maxMessages 1), posts the payload alone with the contract headers, as before', async () => {
    const received: Received[] = [];
    const url = await receiver(received);
    for (const batch of [undefined, { maxMessages: 1 }]) {
      delivery = new HttpDelivery(config(url, batch ? { batch } : {}));
      expect(delivery.maxBatch).toBe(1);
      expect(await delivery.send(request(3, '{"a": 1}'))).toEqual({ ok: true, status: 200 });
      await delivery.close();
      delivery = undefined;
    }
    for (const r of received) {
      expect(r.body).toBe('{"a": 1}');
      expect(reseqHeaders(r.headers)).toEqual({
        'content-type': 'application/json',
        'idempotency-key': 'billing:3:m3',
        'reseq-sequence': '3',
        'reseq-message-id': 'm3',
      });
    }
  });

  it('posts a batch as one array with its range in the headers, and a lone message as an array of one', async () => {
    const received: Received[] = [];
    delivery = new HttpDelivery(config(await receiver(received), { batch: { maxMessages: 50 } }));
    expect(delivery.maxBatch).toBe(50);
    expect(await delivery.sendBatch([request(4), request(5), request(7)])).toEqual({ ok: true, status: 200 });
    expect(await delivery.send(request(8))).toEqual({ ok: true, status: 200 });

    expect(reseqHeaders(received[0]!.headers)).toEqual({
      'content-type': 'application/json',
      'idempotency-key': 'billing:4-7',
      'reseq-sequence': '4',
      'reseq-sequence-last': '7',
    });
    expect(JSON.parse(received[0]!.body)).toEqual(
      [4, 5, 7].map((n) => ({ sequence: n, id: `m${n}`, idempotencyKey: `billing:${n}:m${n}`, payload: { n } })),
    );
    expect(reseqHeaders(received[1]!.headers)).toEqual({
      'content-type': 'application/json',
      'idempotency-key': 'billing:8-8',
      'reseq-sequence': '8',
      'reseq-sequence-last': '8',
    });
    expect(JSON.parse(received[1]!.body)).toEqual([
      { sequence: 8, id: 'm8', idempotencyKey: 'billing:8:m8', payload: { n: 8 } },
    ]);
  });

  it('signs a batch like a single delivery: webhook-id is the batch key, the signature covers the array', async () => {
    const received: Received[] = [];
    const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    delivery = new HttpDelivery(config(await receiver(received), { batch: { maxMessages: 10 }, secret }));
    await delivery.sendBatch([request(1), request(2)]);
    const [{ headers, body }] = received as [Received];
    expect(verifyWebhook({ secret, headers, body })).toMatchObject({ id: 'billing:1-2' });
    expect(headers['webhook-id']).toBe(headers['idempotency-key']);
    expect(() => verifyWebhook({ secret, headers, body: body.replace('"n":2', '"n":3') })).toThrow(/signature/);
  });

  it('reports a refused or failing batch as for a single message', async () => {
    delivery = new HttpDelivery(config(await receiver([], 422), { batch: { maxMessages: 10 } }));
    expect(await delivery.sendBatch([request(1), request(2)])).toMatchObject({
      ok: false,
      retryable: false,
      status: 422,
    });
    await delivery.close();
    server!.close();
    delivery = new HttpDelivery(config(await receiver([], 503), { batch: { maxMessages: 10 } }));
    expect(await delivery.sendBatch([request(1), request(2)])).toMatchObject({
      ok: false,
      retryable: true,
      status: 503,
    });
    expect(await delivery.sendBatch([request(1)], undefined, () => false)).toMatchObject({
      ok: false,
      retryable: true,
      error: 'not sent: mayWrite said no',
    });
  });
});
