import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { TcpDestinationConfig } from '@reseq/config';
import type { DeliveryRequest } from './delivery.js';
import { TcpDelivery } from './tcp-delivery.js';
import { encodeMessageLine, LineSplitter, LineTooLongError, parseAckLine, parseMessageLine } from './tcp-framing.js';
import { startTcpReceiver, type TcpReceiver } from './tcp-receiver.js';

const request = (sequence: number, payload = `{"n":${sequence}}`): DeliveryRequest => ({
  destination: 'ledger',
  sequence,
  messageId: `m${sequence}`,
  payload,
});

function config(port: number, overrides: Partial<TcpDestinationConfig> = {}): TcpDestinationConfig {
  return {
    type: 'tcp',
    host: '127.0.0.1',
    port,
    onDeadLetter: 'block',
    window: 8,
    timeoutMs: 2_000,
    retry: { baseMs: 10, maxMs: 100 },
    ...overrides,
  };
}

describe('tcp framing', () => {
  it('writes the payload as is and compacts one with line breaks', () => {
    expect(encodeMessageLine(request(17, '{"a":[1, 2]}'))).toBe(
      '{"destination":"ledger","sequence":17,"id":"m17","payload":{"a":[1, 2]}}\n',
    );
    const line = encodeMessageLine(request(3, '{\n  "a": "x\\ny"\r\n}'));
    expect(line.slice(0, -1)).not.toMatch(/[\r\n]/);
    expect(parseMessageLine(line.trim())).toEqual({
      destination: 'ledger',
      sequence: 3,
      id: 'm3',
      payload: { a: 'x\ny' },
    });
  });

  it('parses acks and refuses anything else', () => {
    expect(parseAckLine('{"ack":17}')).toBe(17);
    for (const bad of ['{"ack":0}', '{"ack":"17"}', '{"ack":1.5}', '[]', 'null', 'ack 17', '{}']) {
      expect(parseAckLine(bad), bad).toBeUndefined();
    }
  });

  it('splits lines across chunks, keeps split UTF-8 characters whole, drops a trailing \\r', () => {
    const splitter = new LineSplitter(64);
    const bytes = Buffer.from('{"a":"é"}\r\n{"b":1}\n{"c"');
    expect(splitter.push(bytes.subarray(0, 7))).toEqual([]);
    expect(splitter.push(bytes.subarray(7))).toEqual(['{"a":"é"}', '{"b":1}']);
    expect(splitter.push(Buffer.from(':2}\n'))).toEqual(['{"c":2}']);
    expect(() => splitter.push(Buffer.alloc(65, 0x61))).toThrow(LineTooLongError);
  });
});

describe('TcpDelivery with the reference receiver', () => {
  let receiver: TcpReceiver | undefined;
  let delivery: TcpDelivery | undefined;
  afterEach(async () => {
    await delivery?.close();
    await receiver?.close();
    receiver = delivery = undefined;
  });

  it('pipelines a window of lines on one connection and resolves each on its ack', async () => {
    receiver = await startTcpReceiver({ ackBatch: 5, ackDelayMs: 20, cumulativeAcks: true });
    delivery = new TcpDelivery(config(receiver.port));
    const outcomes = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => delivery!.send(request(n))));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(receiver.connections).toBe(1);
    expect(receiver.taken('ledger').map((l) => l.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(receiver.taken('ledger')[0]!.payload).toEqual({ n: 1 });
  });

  it('fails every outstanding send when the connection drops; a restart goes on a new connection', async () => {
    receiver = await startTcpReceiver();
    receiver.holdAcks = true;
    delivery = new TcpDelivery(config(receiver.port));
    const pending = [1, 2, 3].map((n) => delivery!.send(request(n)));
    await waitUntil(() => receiver!.received.length === 3);
    receiver.dropConnections();
    const outcomes = await Promise.all(pending);
    expect(outcomes.map((o) => o.ok)).toEqual([false, false, false]);
    expect(outcomes.every((o) => !o.ok && o.retryable)).toBe(true);
    receiver.holdAcks = false;
    const again = await Promise.all([1, 2, 3, 4].map((n) => delivery!.send(request(n))));
    expect(again.every((o) => o.ok)).toBe(true);
    expect(receiver.received.map((l) => [l.connection, l.sequence, l.taken])).toEqual([
      [1, 1, true],
      [1, 2, true],
      [1, 3, true],
      [2, 1, false],
      [2, 2, false],
      [2, 3, false],
      [2, 4, true],
    ]);
  });

  it('a sequence that does not follow the last one starts a new connection', async () => {
    receiver = await startTcpReceiver();
    delivery = new TcpDelivery(config(receiver.port));
    expect((await delivery.send(request(1))).ok).toBe(true);
    expect((await delivery.send(request(2))).ok).toBe(true);
    expect((await delivery.send(request(2))).ok).toBe(true);
    expect(receiver.received.map((l) => l.connection)).toEqual([1, 1, 2]);
  });

  it('times out without an ack, and when mayWrite says no nothing is written', async () => {
    receiver = await startTcpReceiver();
    receiver.holdAcks = true;
    delivery = new TcpDelivery(config(receiver.port, { timeoutMs: 100 }));
    const outcome = await delivery.send(request(1));
    expect(outcome).toMatchObject({ ok: false, retryable: true, error: 'no ack within 100 ms' });
    receiver.holdAcks = false;
    const refused = await delivery.send(request(1), undefined, () => false);
    expect(refused).toMatchObject({ ok: false, retryable: true, error: 'not sent: mayWrite said no' });
    expect(receiver.received.map((l) => l.sequence)).toEqual([1]);
  });

  it('times each line from its own write: acks that keep coming keep the connection past timeoutMs', async () => {
    receiver = await startTcpReceiver();
    delivery = new TcpDelivery(config(receiver.port, { timeoutMs: 150 }));
    // Eight lines 50 ms apart, each acknowledged at once: 400 ms on one connection.
    for (let n = 1; n <= 8; n++) {
      expect(await delivery.send(request(n))).toEqual({ ok: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(receiver.connections).toBe(1);
    // The next one is not answered: it fails 150 ms after it was written, not sooner.
    receiver.holdAcks = true;
    const written = performance.now();
    const outcome = await delivery.send(request(9));
    expect(outcome).toMatchObject({ ok: false, retryable: true, error: 'no ack within 150 ms' });
    expect(performance.now() - written).toBeGreaterThanOrEqual(145);
  });

  it('a refused connect and an abort are retryable failures', async () => {
    const port = await closedPort();
    delivery = new TcpDelivery(config(port));
    expect(await delivery.send(request(1))).toMatchObject({ ok: false, retryable: true });
    receiver = await startTcpReceiver();
    receiver.holdAcks = true;
    delivery = new TcpDelivery(config(receiver.port));
    const controller = new AbortController();
    const pending = delivery.send(request(1), controller.signal);
    await waitUntil(() => receiver!.received.length === 1);
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, retryable: true, error: 'aborted' });
  });

  it('a line that is no ack ends the connection', async () => {
    const server = createServer((socket: Socket) => socket.on('data', () => socket.write('hello\n')));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    delivery = new TcpDelivery(config((server.address() as AddressInfo).port));
    expect(await delivery.send(request(1))).toMatchObject({ ok: false, retryable: true });
    server.close();
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
