/**
 * The contract's TCP ingest against the real ingest process (and the whole pipeline where
 * delivery matters): one reply line per line, in order, many in flight; bad lines answered with
 * their codes while the connection goes on; backpressure; connection limit, rate limit, idle
 * timeout; SIGTERM with clients connected.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import { LineClient, tcpIngestEnv, tcpPortOf } from '../fixtures/tcp-client.js';
import { expectDelivered, Harness, ingestUrl, pipelineConfig, post, range } from './helpers.js';

const NOWHERE = 'http://127.0.0.1:9/in';

describe('ingest over TCP', () => {
  let h: Harness;
  const clients: LineClient[] = [];

  async function open(ingest: AppProcess, options: { paused?: boolean } = {}): Promise<LineClient> {
    const client = await LineClient.open(tcpPortOf(ingest.logs), options);
    clients.push(client);
    return client;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await h.cleanup();
  });

  it('answers 1,000 pipelined lines in order, and the messages are delivered in that order', async () => {
    h = new Harness('tcp order', inject('redisUrl'));
    const sink = await h.sink();
    const config = await h.config(pipelineConfig({ a: { url: sink.url } }));
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    await h.start('transform-worker', config);
    await h.start('resequencer-sender', config);
    const client = await open(ingest);

    client.send(...range(1, 1000).map((n) => ({ destination: 'a', payload: { n }, id: `m-${n}` })));
    const replies = await client.waitForReplies(1000);
    expect(replies.map((r) => r.ok)).toEqual(range(1, 1000).map(() => true));
    expect(replies.map((r) => r.id)).toEqual(range(1, 1000).map((n) => `m-${n}`));
    expect(replies.map((r) => r.sequences?.a)).toEqual(range(1, 1000));

    await waitFor(() => sink.unique().length >= 1000, 'all deliveries', 60_000);
    expectDelivered(sink, range(1, 1000));
    expect(sink.unique().map((d) => (d.body as { n: number }).n)).toEqual(range(1, 1000));
  });

  it('answers bad lines with their codes while the connection and the other lines go on', async () => {
    h = new Harness('tcp bad lines', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { maxMessageBytes: 1024 },
    });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const client = await open(ingest);

    const valid = (n: number): string => JSON.stringify({ destination: 'a', payload: { n } });
    const cases: [string | Buffer, number | 'ok', string?][] = [
      [valid(1), 'ok'],
      ['{"destination": "a", "payload": ', 400, 'INGEST_MALFORMED_JSON'],
      [valid(2), 'ok'],
      ['{"destination": 42, "payload": 1}', 400, 'INGEST_INVALID_BODY'],
      ['{"destination": "a"}', 400, 'INGEST_INVALID_BODY'],
      ['{"destination": "a", "payload": 1, "extra": true}', 400, 'INGEST_INVALID_BODY'],
      ['[1, 2, 3]', 400, 'INGEST_INVALID_BODY'],
      ['{"destination": "nope", "payload": 1}', 404, 'INGEST_UNKNOWN_DESTINATION'],
      [`{"destination": "a", "payload": "${'x'.repeat(5000)}"}`, 413, 'INGEST_PAYLOAD_TOO_LARGE'],
      [valid(3), 'ok'],
      [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400, 'INGEST_MALFORMED_JSON'],
      [Buffer.from([0x00, 0x01, 0x02, 0x80, 0x9f, 0xc3, 0x28]), 400, 'INGEST_MALFORMED_JSON'],
      ['', 400, 'INGEST_MALFORMED_JSON'],
      ['{"destination": "a", "payload": {"__proto__": {"x": 1}}}', 400, 'INGEST_MALFORMED_JSON'],
      [`{"destination": "a", "payload": ${'['.repeat(400)}${']'.repeat(400)}}`, 'ok'],
      [`${valid(4)}\r`, 'ok'],
    ];
    client.send(...cases.map(([line]) => line));
    const replies = await client.waitForReplies(cases.length);
    expect(client.garbage).toEqual([]);
    const seen = replies.map((r) => (r.ok ? 'ok' : `${r.status} ${r.code}`));
    expect(seen).toEqual(cases.map(([, status, code]) => (status === 'ok' ? 'ok' : `${status} ${code}`)));
    for (const reply of replies.filter((r) => !r.ok)) expect(reply.message?.length).toBeGreaterThan(0);
    expect(replies.filter((r) => r.ok).map((r) => r.sequences?.a)).toEqual([1, 2, 3, 4, 5]);
    // Only the valid lines were written.
    expect(await h.redis.xlen(h.key('in'))).toBe(5);

    // A huge line (far past the limit, in many writes) is not buffered and does not end the connection.
    const chunk = 'y'.repeat(64 * 1024);
    client.socket.write('{"destination": "a", "payload": "');
    for (let i = 0; i < 64; i++) client.socket.write(chunk);
    client.send('"}', valid(6));
    const more = await client.waitForReplies(cases.length + 2);
    expect(more.slice(cases.length).map((r) => r.code ?? r.sequences?.a)).toEqual(['INGEST_PAYLOAD_TOO_LARGE', 6]);
    expect(client.closed).toBe(false);
    expect(ingest.child.exitCode).toBeNull();
  });

  it('pushes back on a client that writes without reading, and answers everything in order once it reads', async () => {
    h = new Harness('tcp backpressure', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { maxPendingPerConnection: 64, destinationWindow: 1_000_000 },
    });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const client = await open(ingest, { paused: true });

    const total = 20_000;
    const padding = 'p'.repeat(200);
    for (let start = 1; start <= total; start += 1000) {
      client.send(
        ...range(start, start + 999).map((n) => JSON.stringify({ destination: 'a', payload: { n, padding } })),
      );
    }
    // The client reads nothing for a while: ingest must neither crash nor buffer without bound.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(ingest.child.exitCode).toBeNull();
    expect(client.replies.length).toBe(0);
    client.socket.resume();
    const replies = await client.waitForReplies(total, 60_000);
    expect(replies.every((r) => r.ok)).toBe(true);
    expect(replies.map((r) => r.sequences?.a)).toEqual(range(1, total));
  });

  it('closes connections past ingest.maxConnections with a 503 line, and serves the others', async () => {
    h = new Harness('tcp max connections', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { maxConnections: 2 },
    });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const first = await open(ingest);
    const second = await open(ingest);
    const third = await open(ingest);
    await third.waitForClose();
    expect(third.replies).toEqual([
      expect.objectContaining({ ok: false, status: 503, code: 'INGEST_TOO_MANY_CONNECTIONS' }),
    ]);
    first.send({ destination: 'a', payload: 1 });
    second.send({ destination: 'a', payload: 2 });
    expect((await first.waitForReplies(1))[0]?.ok).toBe(true);
    expect((await second.waitForReplies(1))[0]?.ok).toBe(true);

    // A slot frees up once a connection closes.
    first.close();
    await waitFor(async () => {
      const again = await open(ingest);
      again.send({ destination: 'a', payload: 3 });
      await again.waitForReplies(1).catch(() => undefined);
      return again.replies[0]?.ok === true;
    }, 'a connection to be accepted again');
  });

  it('answers 429 INGEST_RATE_LIMITED (with Retry-After over HTTP) past ingest.rateLimit', async () => {
    h = new Harness('tcp rate limit', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { rateLimit: { perSecond: 0.5, burst: 3 } },
    });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const client = await open(ingest);
    client.send(...range(1, 5).map((n) => ({ destination: 'a', payload: n })));
    const replies = await client.waitForReplies(5);
    expect(replies.map((r) => (r.ok ? 'ok' : `${r.status} ${r.code}`))).toEqual([
      'ok',
      'ok',
      'ok',
      '429 INGEST_RATE_LIMITED',
      '429 INGEST_RATE_LIMITED',
    ]);
    // Without tokens the limit is per remote address: HTTP from the same host shares the bucket.
    const reply = await post(`${ingestUrl(ingest)}/v1/messages`, { destination: 'a', payload: 6 });
    expect({ status: reply.status, code: reply.body.code }).toEqual({ status: 429, code: 'INGEST_RATE_LIMITED' });
    expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await h.redis.xlen(h.key('in'))).toBe(3);
  });

  it('closes an idle connection after ingest.idleTimeoutMs', async () => {
    h = new Harness('tcp idle', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { idleTimeoutMs: 300 },
    });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const client = await open(ingest);
    client.send({ destination: 'a', payload: 1 });
    await client.waitForReplies(1);
    await client.waitForClose(5_000);
    expect(client.closed).toBe(true);
  });

  it('on SIGTERM answers the lines in flight, closes the connections and exits 0', async () => {
    h = new Harness('tcp sigterm', inject('redisUrl'));
    const config = await h.config({ destinations: { a: { type: 'http', url: NOWHERE } } });
    const ingest = await h.start('ingest', config, await tcpIngestEnv());
    const busy = await open(ingest);
    const quiet = await open(ingest);
    busy.send(...range(1, 200).map((n) => ({ destination: 'a', payload: n })));
    await busy.waitForReplies(1);
    await ingest.stop().then((code) => expect(code).toBe(0));
    await busy.waitForClose();
    await quiet.waitForClose();
    // Every reply that came is well-formed and in order; what was accepted is in Redis.
    const accepted = busy.replies.filter((r) => r.ok);
    expect(accepted.map((r) => r.sequences?.a)).toEqual(range(1, accepted.length));
    for (const reply of busy.replies.filter((r) => !r.ok)) expect(reply.code).toBe('INGEST_SHUTTING_DOWN');
    expect(await h.redis.xlen(h.key('in'))).toBe(accepted.length);
  });
});
