/**
 * Sender high availability with real processes: the active sender of a destination SIGKILLed
 * (another takes over within a bounded time), SIGSTOPped for longer than its lease while it has
 * a request in flight (it must neither record progress nor deliver out of turn when it wakes),
 * and leases spreading over the senders as they join, with deliveries going on in order.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { waitFor, type AppProcess } from '../fixtures/apps.js';
import type { HttpSink } from '../fixtures/http-sink.js';
import { expectDelivered, Harness, pipelineConfig, range, sequences, TEST_TRANSFORM } from './helpers.js';

const LEASE_TTL_MS = 1_500;

/** The pid in a lease value "<hostname>-<pid>-<hex>|<token>", or undefined when free. */
async function leaseHolder(h: Harness, destination: string): Promise<number | undefined> {
  const value = await h.redis.get(h.key(`lease:${destination}`));
  return value === null ? undefined : Number(/-(\d+)-[0-9a-f]+\|\d+$/.exec(value)?.[1]);
}

/** On the wire: each sequence is the previous one, again with the same key, or the next. */
function expectNeverBackwards(sink: HttpSink): void {
  for (let k = 1; k < sink.received.length; k++) {
    const [before, now] = [sink.received[k - 1]!, sink.received[k]!];
    if (now.sequence === before.sequence) expect(now.idempotencyKey).toBe(before.idempotencyKey);
    else expect(now.sequence, `after ${before.sequence}`).toBe(before.sequence + 1);
  }
}

describe('sender high availability', () => {
  let h: Harness;
  const producers: { stop(): Promise<number> }[] = [];
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') console.error(h.dumpLogs(30));
    await Promise.all(producers.splice(0).map((p) => p.stop().catch(() => 0)));
    await h.cleanup();
  });

  /** Ingest and a worker on a fresh pipeline with one sink per destination. */
  async function pipeline(name: string, destinations: readonly string[]) {
    h = new Harness(name, inject('redisUrl'));
    const sinks: Record<string, HttpSink> = {};
    for (const d of destinations) sinks[d] = await h.sink();
    const configFor = (query = '') =>
      h.config(
        pipelineConfig(Object.fromEntries(destinations.map((d) => [d, { url: `${sinks[d]!.url}${query}` }])), {
          sender: { leaseTtlMs: LEASE_TTL_MS },
        }),
      );
    const config = await configFor();
    const ingest = await h.start('ingest', config);
    await h.start('transform-worker', config, { TRANSFORM_MODULE: TEST_TRANSFORM, RESEQ_TEST_MAX_DELAY_MS: '20' });
    return { sinks, config, configFor, ingest };
  }

  /** Sends to every destination every `everyMs` until stopped; resolves with how many. */
  function produce(ingest: AppProcess, destinations: readonly string[], everyMs: number) {
    let sent = 0;
    let running = true;
    const done = (async () => {
      while (running) {
        sent++;
        await h.send(ingest, { destinations: [...destinations], payload: { n: sent }, id: `m${sent}` });
        await sleep(everyMs);
      }
      return sent;
    })();
    const producer = {
      stop: async () => {
        running = false;
        return done;
      },
    };
    producers.push(producer);
    return producer;
  }

  async function expectAllDelivered(sinks: Record<string, HttpSink>, sent: number): Promise<void> {
    const all = Object.values(sinks);
    await waitFor(() => all.every((s) => s.unique().length >= sent), 'every message everywhere', 20_000);
    await sleep(300);
    for (const sink of all) {
      expectDelivered(sink, range(1, sent));
      expect(sink.unique().map((d) => d.messageId)).toEqual(range(1, sent).map((n) => `m${n}`));
      expectNeverBackwards(sink);
    }
  }

  it('SIGKILL of the active sender: one of two standbys takes over within 3 lease TTLs and delivery goes on in order', async () => {
    const { sinks, config, ingest } = await pipeline('ha sigkill', ['a']);
    const senders = [
      await h.start('resequencer-sender', config),
      await h.start('resequencer-sender', config),
      await h.start('resequencer-sender', config),
    ];
    const producer = produce(ingest, ['a'], 30);
    await waitFor(() => sinks.a!.unique().length >= 10, 'deliveries to start');

    const holderPid = await leaseHolder(h, 'a');
    const active = senders.find((s) => s.child.pid === holderPid)!;
    expect(active).toBeDefined();
    await active.kill();
    const killedAt = Date.now();
    const lastBefore = Math.max(...sequences(sinks.a!.received));
    await waitFor(
      async () => {
        const pid = await leaseHolder(h, 'a');
        return pid !== undefined && pid !== holderPid;
      },
      'a standby to take the lease',
      3 * LEASE_TTL_MS,
    );
    const leaseMovedMs = Date.now() - killedAt;
    await waitFor(
      () => sinks.a!.received.some((d) => d.sequence > lastBefore),
      'deliveries to resume',
      3 * LEASE_TTL_MS,
    );
    const resumedMs = Date.now() - killedAt;
    expect(leaseMovedMs).toBeLessThan(3 * LEASE_TTL_MS);
    expect(resumedMs).toBeLessThan(3 * LEASE_TTL_MS);

    await expectAllDelivered(sinks, await producer.stop());
    // The other standby stayed one.
    const holders = senders.filter((s) => s !== active).map((s) => s.child.pid);
    expect(holders).toContain(await leaseHolder(h, 'a'));
  });

  it('SIGSTOP of the active sender with a request in flight, past its lease: the new holder resends that message; the woken one records nothing and sends nothing more', async () => {
    const { sinks, configFor, ingest } = await pipeline('ha sigstop', ['a']);
    const sink = sinks.a!;
    // Same destination, a different query per sender, so the sink can tell who sent what.
    const paused = await h.start('resequencer-sender', await configFor('?via=paused'));
    expect(await leaseHolder(h, 'a')).toBe(paused.child.pid);
    const standby = await h.start('resequencer-sender', await configFor('?via=standby'));

    const requests: { sequence: number; key: string; via: string; at: number }[] = [];
    let holdNext = false;
    let held: { sequence: number; arrived: () => void } | undefined;
    let releaseHeld: () => void = () => {};
    const heldArrived = new Promise<void>((resolve) => (held = { sequence: 0, arrived: resolve }));
    const released = new Promise<void>((resolve) => (releaseHeld = resolve));
    sink.respond = async (d, req) => {
      const via = new URL(req.url ?? '/', 'http://x').searchParams.get('via') ?? '?';
      requests.push({ sequence: d.sequence, key: d.idempotencyKey, via, at: Date.now() });
      if (holdNext && via === 'paused') {
        holdNext = false;
        held!.sequence = d.sequence;
        held!.arrived();
        // Answered 200 only while the sender is stopped: it finds the 2xx when it wakes.
        await released;
      }
      return 200;
    };

    // The delivered position, sampled all along: it must never go back, and never name a
    // sequence the destination has not answered yet.
    const positions: { at: number; pos: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const pos = Number((await h.redis.hget(h.key('pos'), 'a')) ?? 0);
        const answered = Math.max(0, ...sequences(sink.received));
        expect(pos, 'position ahead of what the destination answered').toBeLessThanOrEqual(answered);
        positions.push({ at: Date.now(), pos });
        await sleep(10);
      }
    })();

    const producer = produce(ingest, ['a'], 40);
    await waitFor(() => sink.unique().length >= 10, 'deliveries to start');
    holdNext = true;
    await heldArrived;
    process.kill(paused.child.pid!, 'SIGSTOP');
    const stoppedAt = Date.now();
    await sleep(200);
    releaseHeld();
    const heldSequence = held!.sequence;

    // The standby takes over and starts with the message whose 2xx was never recorded.
    await waitFor(() => requests.some((r) => r.via === 'standby'), 'the standby to deliver', 3 * LEASE_TTL_MS);
    expect(Date.now() - stoppedAt).toBeLessThan(3 * LEASE_TTL_MS);
    expect(await leaseHolder(h, 'a')).toBe(standby.child.pid);
    const firstByStandby = requests.find((r) => r.via === 'standby')!;
    expect(firstByStandby.sequence).toBe(heldSequence);
    expect(firstByStandby.key).toBe(requests.find((r) => r.sequence === heldSequence)!.key);

    await sleep(stoppedAt + 3 * LEASE_TTL_MS - Date.now());
    const posBeforeWake = Number(await h.redis.hget(h.key('pos'), 'a'));
    expect(posBeforeWake).toBeGreaterThanOrEqual(heldSequence);
    process.kill(paused.child.pid!, 'SIGCONT');
    const continuedAt = Date.now();
    await paused.waitForLog(
      (l) =>
        l.msg === 'lease lost (expired or taken over)' ||
        l.msg === 'lease lost while recording progress; stopping the lane' ||
        l.msg === 'fenced: another sender holds this destination now',
      5_000,
    );
    await sleep(1_000);
    const sent = await producer.stop();
    await expectAllDelivered(sinks, sent);
    sampling = false;
    await sampler;

    // The woken sender sent nothing after its pause began: its last request was the held one.
    const byPaused = requests.filter((r) => r.via === 'paused');
    expect(byPaused.filter((r) => r.at > stoppedAt)).toEqual([]);
    expect(byPaused.at(-1)!.sequence).toBe(heldSequence);
    expect(requests.filter((r) => r.at >= continuedAt).every((r) => r.via === 'standby')).toBe(true);
    // It recorded nothing either: the position never went back, and reached the held sequence
    // only after the standby's delivery of it.
    for (let i = 1; i < positions.length; i++) expect(positions[i]!.pos).toBeGreaterThanOrEqual(positions[i - 1]!.pos);
    const reachedHeld = positions.find((p) => p.pos >= heldSequence)!;
    expect(reachedHeld.at).toBeGreaterThanOrEqual(firstByStandby.at);
    expect(Number(await h.redis.hget(h.key('pos'), 'a'))).toBe(sent);
    // It is still alive, a standby now.
    expect(paused.child.exitCode).toBeNull();
    expect(await leaseHolder(h, 'a')).toBe(standby.child.pid);
  });

  it('SIGSTOP of the active sender after its lease check, before the request is written: when it wakes past its lease it does not send out of turn', async () => {
    const { sinks, configFor, ingest } = await pipeline('ha stop before send', ['a']);
    const sink = sinks.a!;
    // Stops itself on its 6th send, between the lane's lease check and the write.
    const paused = await h.start('resequencer-sender', await configFor('?via=paused'), {
      RESEQ_FAULT: 'sender-before-send:6:stop',
    });
    expect(await leaseHolder(h, 'a')).toBe(paused.child.pid);
    const standby = await h.start('resequencer-sender', await configFor('?via=standby'));
    const requests: { sequence: number; via: string; at: number }[] = [];
    sink.respond = (d, req) => {
      const via = new URL(req.url ?? '/', 'http://x').searchParams.get('via') ?? '?';
      requests.push({ sequence: d.sequence, via, at: Date.now() });
      return 200;
    };

    const producer = produce(ingest, ['a'], 40);
    await paused.waitForLog((l) => l.msg === 'RESEQ_FAULT: stopping this process', 10_000);
    const stoppedAt = Date.now();
    expect(sequences(sink.received)).toEqual(range(1, 5));
    // The standby takes over, resends nothing the paused one delivered, and moves well past 6.
    await waitFor(() => sink.unique().length >= 12, 'the standby to deliver past 6', 4 * LEASE_TTL_MS);
    expect(await leaseHolder(h, 'a')).toBe(standby.child.pid);
    expect(Date.now() - stoppedAt).toBeLessThan(4 * LEASE_TTL_MS);

    process.kill(paused.child.pid!, 'SIGCONT');
    const continuedAt = Date.now();
    await paused.waitForLog(
      (l) =>
        l.msg === 'lease lost (expired or taken over)' || l.msg === 'fenced: another sender holds this destination now',
      5_000,
    );
    await sleep(500);
    await expectAllDelivered(sinks, await producer.stop());
    // Its request for 6 was never written: nothing from it after the pause.
    expect(requests.filter((r) => r.via === 'paused').map((r) => r.sequence)).toEqual(range(1, 5));
    expect(requests.filter((r) => r.at >= continuedAt && r.via !== 'standby')).toEqual([]);
    expect(paused.child.exitCode).toBeNull();
  });

  it('spreads leases: a sender joining one that holds all four destinations takes two, while deliveries go on in order', async () => {
    const names = ['d1', 'd2', 'd3', 'd4'];
    const { sinks, config, ingest } = await pipeline('ha spread', names);
    const first = await h.start('resequencer-sender', config);
    const producer = produce(ingest, names, 30);
    await waitFor(() => names.every((d) => sinks[d]!.unique().length >= 5), 'deliveries everywhere');
    for (const d of names) expect(await leaseHolder(h, d)).toBe(first.child.pid);

    const second = await h.start('resequencer-sender', config);
    const count = async (pid: number | undefined) =>
      (await Promise.all(names.map((d) => leaseHolder(h, d)))).filter((p) => p === pid).length;
    await waitFor(
      async () => (await count(first.child.pid)) === 2 && (await count(second.child.pid)) === 2,
      'two leases each',
      4 * LEASE_TTL_MS,
    );
    await sleep(500);
    await expectAllDelivered(sinks, await producer.stop());
    expect(await count(first.child.pid)).toBe(2);
    expect(await count(second.child.pid)).toBe(2);
  });
});
