/**
 * Ingest authentication (`ingest.tokens`) over HTTP and TCP, and TLS for both, against the real
 * ingest process: a missing or unknown token is answered 401 and writes nothing, a known one is
 * accepted with its source on logs and metrics, and no token ever reaches a log line.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeConfig, type AppProcess, type TempConfig } from '../fixtures/apps.js';
import { LineClient, tcpIngestEnv, tcpPortOf } from '../fixtures/tcp-client.js';
import { get, Harness, ingestUrl, post } from './helpers.js';

const NOWHERE = 'http://127.0.0.1:9/in';
const BILLING_TOKEN = 'billing-token-0123456789abcdef';
const SHOP_TOKEN = 'shop-token-fedcba9876543210';

describe('ingest authentication', () => {
  let h: Harness;
  let ingest: AppProcess;
  let url: string;
  const clients: LineClient[] = [];

  beforeAll(async () => {
    h = new Harness('ingest auth', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { tokens: { billing: BILLING_TOKEN, shop: SHOP_TOKEN } },
    });
    ingest = await h.start('ingest', config, await tcpIngestEnv());
    url = `${ingestUrl(ingest)}/v1/messages`;
  });
  afterAll(async () => {
    for (const client of clients.splice(0)) client.close();
    await h.cleanup();
  });

  async function open(): Promise<LineClient> {
    const client = await LineClient.open(tcpPortOf(ingest.logs));
    clients.push(client);
    return client;
  }

  it('answers HTTP 401 INGEST_UNAUTHORIZED without a known bearer token, and writes nothing', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: `Basic ${BILLING_TOKEN}` },
      { authorization: `Bearer ${BILLING_TOKEN}x` },
    ];
    for (const headers of attempts) {
      const reply = await post(url, { destination: 'a', payload: 1 }, headers);
      expect({ status: reply.status, code: reply.body.code }, reply.text).toEqual({
        status: 401,
        code: 'INGEST_UNAUTHORIZED',
      });
      expect(typeof reply.body.message).toBe('string');
    }
    // Even a malformed body is refused for its missing token first.
    expect((await post(url, '{not json')).status).toBe(401);
    expect(await h.redis.xlen(h.key('in'))).toBe(0);
    // Probes stay open to the orchestrator.
    expect((await get(`${ingestUrl(ingest)}/healthz`)).status).toBe(200);
  });

  it('accepts HTTP with a known token, with the source on logs and metrics', async () => {
    const reply = await post(url, { destination: 'a', payload: 1 }, { authorization: `Bearer ${BILLING_TOKEN}` });
    expect(reply.status, reply.text).toBe(202);
    await ingest.waitForLog((l) => l.msg === 'http source authenticated' && l.source === 'billing');
    const metrics = (await get(`${ingestUrl(ingest)}/metrics`)).text;
    expect(metrics).toMatch(/reseq_ingest_accepted_total\{[^}]*destination="a"[^}]*source="billing"[^}]*\} 1/);
    expect(metrics).toMatch(/reseq_ingest_rejected_total\{[^}]*code="INGEST_UNAUTHORIZED"[^}]*\} \d/);
  });

  it('over TCP closes a connection that does not open with a known token, after one 401 line', async () => {
    for (const first of [
      JSON.stringify({ destination: 'a', payload: 1 }),
      JSON.stringify({ auth: 'unknown-token-0123456789' }),
      JSON.stringify({ auth: BILLING_TOKEN, extra: 1 }),
      'garbage',
    ]) {
      const client = await open();
      client.send(first, { destination: 'a', payload: 2 });
      await client.waitForClose();
      expect(client.replies).toEqual([
        expect.objectContaining({ ok: false, status: 401, code: 'INGEST_UNAUTHORIZED' }),
      ]);
    }
    expect(await h.redis.xlen(h.key('in'))).toBe(1);
  });

  it('over TCP accepts lines after {"auth": <token>}, with the source on logs and metrics', async () => {
    const client = await open();
    client.send({ auth: SHOP_TOKEN }, { destination: 'a', payload: 1 }, { destination: 'a', payload: 2 });
    const replies = await client.waitForReplies(3);
    expect(replies[0]).toEqual({ ok: true });
    expect(replies.slice(1).map((r) => r.sequences?.a)).toEqual([2, 3]);
    await ingest.waitForLog((l) => l.msg === 'tcp client authenticated' && l.source === 'shop');
    const metrics = (await get(`${ingestUrl(ingest)}/metrics`)).text;
    expect(metrics).toMatch(/reseq_ingest_accepted_total\{[^}]*destination="a"[^}]*source="shop"[^}]*\} 2/);
  });

  it('never logs a token', () => {
    const text = JSON.stringify(ingest.logs);
    expect(text).not.toContain(BILLING_TOKEN);
    expect(text).not.toContain(SHOP_TOKEN);
  });
});

describe('ingest over TLS', () => {
  let h: Harness;
  let ingest: AppProcess;
  let certs: TempConfig;
  let ca: Buffer;

  beforeAll(async () => {
    h = new Harness('ingest tls', inject('redisUrl'));
    certs = await writeConfig({});
    const cert = join(certs.dir, 'cert.pem');
    const key = join(certs.dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    ca = readFileSync(cert);
    const config = await h.config({
      destinations: { a: { type: 'http', url: NOWHERE } },
      ingest: { tls: { cert, key }, tokens: { billing: BILLING_TOKEN } },
    });
    ingest = await h.start('ingest', config, await tcpIngestEnv());
  });
  afterAll(async () => {
    await h.cleanup();
    await certs.remove();
  });

  it('serves HTTPS', async () => {
    const port = Number(new URL(ingestUrl(ingest)).port);
    const body = JSON.stringify({ destination: 'a', payload: { tls: true } });
    const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/messages',
          method: 'POST',
          ca,
          servername: 'localhost',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${BILLING_TOKEN}` },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(reply.status, reply.text).toBe(202);
    expect(JSON.parse(reply.text)).toEqual({ id: expect.any(String) as unknown, sequences: { a: 1 } });
  });

  it('serves TCP over TLS', async () => {
    const client = await LineClient.open(tcpPortOf(ingest.logs), { ca });
    client.send({ auth: BILLING_TOKEN }, { destination: 'a', payload: 2 });
    const replies = await client.waitForReplies(2);
    expect(replies[1]?.sequences).toEqual({ a: 2 });
    client.close();
  });

  it('does not speak plain HTTP on the TLS port', async () => {
    await expect(fetch(`${ingestUrl(ingest)}/healthz`)).rejects.toThrow();
  });
});
