/**
 * HTTP ingest's slow-client protection against the real process: a request whose headers or
 * body trickle in (slowloris) is cut off after `ingest.requestTimeoutMs`, and the connection
 * limit holds. (TCP's limits are in ingest-tcp.test.ts.)
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AppProcess } from '../fixtures/apps.js';
import { tcpIngestEnv } from '../fixtures/tcp-client.js';
import { Harness, ingestUrl, post } from './helpers.js';

describe('ingest limits over HTTP', () => {
  let h: Harness;
  let ingest: AppProcess;

  beforeAll(async () => {
    h = new Harness('ingest limits', inject('redisUrl'));
    const config = await h.config({
      destinations: { a: { type: 'http', url: 'http://127.0.0.1:9/in' } },
      ingest: { requestTimeoutMs: 1000 },
    });
    ingest = await h.start('ingest', config, await tcpIngestEnv());
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('cuts off a request that trickles in, and serves others meanwhile', async () => {
    const { port } = new URL(ingestUrl(ingest));
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.on('error', () => undefined);
    const started = Date.now();
    let closedAt = 0;
    socket.on('close', () => (closedAt = Date.now()));
    socket.write('POST /v1/messages HTTP/1.1\r\nHost: localhost\r\n');
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
    }, 200);
    try {
      const reply = await post(`${ingestUrl(ingest)}/v1/messages`, { destination: 'a', payload: 1 });
      expect(reply.status).toBe(202);
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (closedAt > 0 || Date.now() - started > 10_000) {
            clearInterval(check);
            resolve();
          }
        }, 50);
      });
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    expect(closedAt, 'the slow connection was never closed').toBeGreaterThan(0);
    expect(closedAt - started).toBeLessThan(5_000);
    expect(ingest.child.exitCode).toBeNull();
  });
});
