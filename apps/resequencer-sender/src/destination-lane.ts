/**
 * One destination's delivery lane, run by the sender that holds its lease. It loads the
 * delivered position and the reorder buffer from Redis, takes new results as the reader
 * buffers them, and settles sequences strictly in order: deliver (retrying 5xx and timeouts
 * with backoff), skip a dropped one, or stop at a dead letter (policy `block`). Progress is
 * recorded, fenced by the lease, only after the destination answered 2xx. Where the delivery
 * has a window (TCP), several sends are in flight at once, still settled and recorded in order
 * (window-step.ts); an HTTP destination with batch delivery gets the ready ones in one request
 * (batch-step.ts); otherwise one message goes at a time (single-step.ts).
 * An operator's replay request (`reseq replay`) is run here too, between two sequences
 * (replay-runner.ts), and each delivered value is kept in the destination's history.
 */
import type { DestinationConfig } from '@reseq/config';
import type { Delivery } from '@reseq/delivery';
import { ReorderBuffer } from '@reseq/resequencer';
import { faultPoint, sleep, type Logger } from '@reseq/runtime';
import {
  blockOnDeadLetter,
  deadLetterDelivery,
  holdsDeadResult,
  loadLaneState,
  readBlocked,
  readLaneControl,
  recordLostSequence,
  sequenceExists,
  type AdvanceStep,
  type KeySchema,
  type ReplayRequest,
  type ReseqRedis,
  type Result,
  type ResultEntry,
  type AdvanceOutcome,
} from '@reseq/store';
import { deliverBatch } from './batch-step.js';
import { sendOne } from './single-step.js';
import type { ProgressRecorder, SentStep } from './progress-recorder.js';
import { runReplay } from './replay-runner.js';
import { deliverWindow, type WindowStepDeps } from './window-step.js';
import type { SenderMetrics } from './sender-metrics.js';

/** How often a blocked lane looks whether an operator released it, in ms. */
const BLOCKED_POLL_MS = 2000;

/**
 * How old the lane's pause flag (and replay request) may be before it reads them again, in
 * ms: the delay between `reseq destination pause` (or `reseq replay`) and the lane acting on
 * it, without a Redis round trip per message. An idle lane looks as often.
 */
const PAUSE_CHECK_MS = 1000;

/** How often a paused lane looks whether an operator resumed it, in ms. */
const PAUSED_POLL_MS = 2000;

/** What a lane needs. */
export interface LaneDeps {
  destination: string;
  config: DestinationConfig;
  delivery: Delivery;
  redis: ReseqRedis;
  keys: KeySchema;
  recorder: ProgressRecorder;
  metrics: SenderMetrics;
  logger: Logger;
  /** Whether the lease is still safely ours by the local clock (checked before every send). */
  leaseValid: () => boolean;
  /** Called when a fenced write shows the lease was lost. */
  onFenced: () => void;
  /** How long the next sequence may be missing before the lane looks whether it still exists. */
  gapTimeoutMs: number;
  /** `sender.historyLength`: delivered values kept for `reseq replay` (HTTP destinations only). */
  historyLength: number;
}

/** What {@link DestinationLane.offer} did with a result. */
export type Offered = 'held' | 'same' | 'duplicate';

/** The result-stream entry a result was read from; undefined for one loaded from the reorder buffer. */
function entryIdOf(result: Result): string | undefined {
  return (result as Partial<ResultEntry>).entryId;
}

/**
 * The settled results of `from`..`to` that the lane took straight from the result stream, for
 * the `advance` step that deletes them there (AdvanceStep.inStream).
 */
function inStream(buffer: ReorderBuffer<Result>, from: number, to: number): [number, string][] {
  const entries: [number, string][] = [];
  for (let sequence = from; sequence <= to; sequence++) {
    const held = buffer.at(sequence);
    const entryId = held && entryIdOf(held);
    if (entryId !== undefined) entries.push([sequence, entryId]);
  }
  return entries;
}

/** How the lane's current sequence was settled. */
type Settlement = 'delivered' | 'dropped' | 'skipped' | 'blocked' | 'stopped' | 'reloaded';

/** A destination's in-order delivery loop. */
export class DestinationLane {
  readonly #deps: LaneDeps;
  readonly #log: Logger;
  #buffer: ReorderBuffer<Result> = new ReorderBuffer();
  #blockedAt: number | undefined;
  /** The destination's pause marker as last read, and when (performance.now()). */
  #paused = false;
  #pauseCheckedAt = -Infinity;
  /** A replay request read with the pause marker, until the lane has run it. */
  #replay: ReplayRequest | undefined;
  /** When the idle lane last looked for a gap (performance.now()). */
  #gapCheckedAt = -Infinity;
  /** Sequence of the last dead letter counted in metrics, so a reload does not count it again. */
  #countedDeadLetter: number | undefined;
  #wake: (() => void) | undefined;
  /** The sequence the lane has been missing, and since when (performance.now()). */
  #gap: { sequence: number; since: number } | undefined;
  /**
   * The last delivery's progress, sent to Redis and not yet answered: the lane delivers the next
   * sequence meanwhile (see {@link #recordAhead}), and settles this before recording another.
   */
  #recording: { step: AdvanceStep; sent: SentStep } | undefined;
  readonly #stopping = new AbortController();
  readonly #lost = new AbortController();
  #loop: Promise<void> = Promise.resolve();

  private constructor(
    deps: LaneDeps,
    readonly leaseValue: string,
  ) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'lane', destination: deps.destination });
  }

  /** Loads the destination's state from Redis and starts delivering. */
  static async open(deps: LaneDeps, leaseValue: string): Promise<DestinationLane> {
    const lane = new DestinationLane(deps, leaseValue);
    await lane.#reload();
    // Every lane's series exist from the start, so a dashboard sees 0 rather than nothing.
    deps.metrics.gapAge.set({ destination: deps.destination }, 0);
    deps.metrics.paused.set({ destination: deps.destination }, 0);
    lane.#loop = lane.#run();
    lane.#log.info({ delivered: lane.#buffer.delivered, buffered: lane.#buffer.size, leaseValue }, 'lane active');
    return lane;
  }

  get destination(): string {
    return this.#deps.destination;
  }

  /** The last sequence this lane settled (delivered, dropped or skipped). */
  get delivered(): number {
    return this.#buffer.delivered;
  }

  /**
   * Takes results the reader read from this destination's result stream, or moved into its
   * reorder buffer (result-reader.ts), and says what became of each: `held` (new to the lane),
   * `same` (this very stream entry is held already) or `duplicate` (its sequence is settled, or
   * held from another entry: a recovered worker finishing late). `countDuplicates`: whether
   * duplicates count in the metrics.
   */
  offer(results: readonly Result[], countDuplicates = true): Offered[] {
    let duplicates = 0;
    const outcomes = results.map((result): Offered => {
      const held = this.#buffer.at(result.sequence);
      const heldEntry = held && entryIdOf(held);
      if (heldEntry !== undefined && heldEntry === entryIdOf(result)) return 'same';
      if (this.#buffer.offer(result.sequence, result) === 'buffered') return 'held';
      duplicates++;
      return 'duplicate';
    });
    if (duplicates > 0 && countDuplicates)
      this.#deps.metrics.duplicates.inc({ destination: this.destination }, duplicates);
    this.#deps.metrics.buffered.set({ destination: this.destination }, this.#buffer.size);
    this.#wakeUp();
    return outcomes;
  }

  /**
   * Stops the lane. `graceful`: a delivery in flight finishes and is recorded, nothing new
   * starts. `lost`: the lease is gone; an in-flight request is aborted, nothing is recorded.
   */
  async stop(mode: 'graceful' | 'lost'): Promise<void> {
    this.#stopping.abort();
    if (mode === 'lost') this.#lost.abort();
    this.#wakeUp();
    await this.#loop;
  }

  async #reload(): Promise<void> {
    const state = await loadLaneState(this.#deps.redis, this.#deps.keys, this.destination);
    this.#buffer = new ReorderBuffer(state.delivered);
    for (const result of state.buffered) this.#buffer.offer(result.sequence, result);
    // A block marker at or below the delivered position is stale (left by a sender that lost
    // its lease); it holds nothing back.
    this.#blockedAt = state.blockedAt !== undefined && state.blockedAt > state.delivered ? state.blockedAt : undefined;
    this.#deps.metrics.delivered.set({ destination: this.destination }, state.delivered);
    this.#deps.metrics.buffered.set({ destination: this.destination }, this.#buffer.size);
    this.#deps.metrics.blocked.set({ destination: this.destination }, this.#blockedAt === undefined ? 0 : 1);
  }

  async #run(): Promise<void> {
    try {
      await this.#deliverInOrder();
    } finally {
      // Stopping: the last delivery's progress is still recorded (unless the lease is gone).
      if (this.#recording && !this.#lost.signal.aborted) await this.#settleRecording().catch(() => undefined);
    }
  }

  async #deliverInOrder(): Promise<void> {
    while (!this.#stopping.signal.aborted) {
      try {
        // Anything but the next plain delivery needs the last one's progress settled first.
        if (this.#recording && !this.#mayDeliverAhead()) {
          if ((await this.#settleRecording()) === 'fenced') return;
          continue;
        }
        if (this.#replay && !this.#paused) {
          if ((await this.#runReplay(this.#replay)) === 'fenced') return;
          continue;
        }
        if (this.#blockedAt !== undefined) {
          await this.#waitWhileBlocked();
          continue;
        }
        let result = this.#buffer.peek();
        if (result && (await this.#checkPaused())) {
          // Paused: the last delivery's progress is settled first (at the top of the loop).
          if (!this.#recording) await this.#waitWhilePaused();
          continue;
        }
        if (!result) {
          // Idle: wake at least once a second to see a replay request, and look for a gap at
          // the gap check's own pace.
          await this.#sleepUntilWoken(Math.min(this.#gapCheckMs(), PAUSE_CHECK_MS));
          if (this.#buffer.peek() || this.#stopping.signal.aborted) continue;
          await this.#checkPaused();
          if (performance.now() - this.#gapCheckedAt >= this.#gapCheckMs()) {
            this.#gapCheckedAt = performance.now();
            await this.#watchGap();
          }
          continue;
        }
        this.#clearGap();
        // Batch delivery (HTTP `batch`): what is ready goes in one request; else one at a time below.
        if ((this.#deps.delivery.maxBatch ?? 1) > 1 && result.kind === 'value') {
          const step = await deliverBatch(this.#stepDeps());
          if (step === 'fenced') return;
          if (step === 'done') continue;
        }
        if ((this.#deps.delivery.window ?? 1) > 1 && result.kind !== 'dead') {
          const step = await deliverWindow(this.#stepDeps());
          if (step === 'fenced') return;
          result = this.#buffer.peek();
          // A rejected message is settled below, one at a time (dead-lettered as for HTTP).
          if (step === 'done' || !result) continue;
        }
        const settlement = await this.#settle(result);
        if (settlement === 'stopped' || settlement === 'blocked' || settlement === 'reloaded') continue;
        // The previous delivery's progress (sent while this one was on its way) comes first.
        if (this.#recording) {
          const previous = await this.#settleRecording();
          if (previous === 'fenced') return;
          // Reloaded: this delivery is not recorded, and goes out again from the reloaded state.
          if (previous === 'reloaded') continue;
        }
        const step: AdvanceStep = {
          destination: this.destination,
          leaseValue: this.leaseValue,
          from: result.sequence,
          to: result.sequence,
          skipped: settlement === 'skipped',
          history: this.#historyLength(),
          inStream: inStream(this.#buffer, result.sequence, result.sequence),
        };
        if ((await this.#recordAhead(step)) === 'fenced') return;
      } catch (err) {
        if (this.#stopping.signal.aborted) return;
        this.#log.warn({ err }, 'lane step failed; retrying');
        await sleep(500, this.#stopping.signal);
      }
    }
  }

  /**
   * Records the progress of the delivery just made. Where the step has left this process once
   * sent (a single Redis with no WAIT: `writesLeftProcess`), the lane moves on to the next
   * sequence at once and settles the reply before its next record: the round trip to Redis
   * overlaps the next delivery instead of adding to it. A crash then still loses no progress
   * (what was sent reaches Redis), so the receiver still sees at most the message in flight
   * again. Otherwise the lane waits for the reply (and the replicas' confirmation) first.
   */
  async #recordAhead(step: AdvanceStep): Promise<'fenced' | undefined> {
    const sent = this.#deps.recorder.send(step);
    this.#recording = { step, sent };
    const left = await sent.left;
    if (!left) return (await this.#settleRecording()) === 'fenced' ? 'fenced' : undefined;
    // Delivered and on its way to Redis: the next sequence may go out.
    this.#buffer.advance();
    this.#deps.metrics.buffered.set({ destination: this.destination }, this.#buffer.size);
    return undefined;
  }

  /** Whether the next step is a plain delivery, which may go out before the last one's progress is answered. */
  #mayDeliverAhead(): boolean {
    const next = this.#buffer.peek();
    return (
      next !== undefined &&
      next.kind !== 'dead' &&
      !this.#stopping.signal.aborted &&
      !this.#paused &&
      !this.#replay &&
      this.#blockedAt === undefined &&
      (this.#deps.delivery.maxBatch ?? 1) <= 1 &&
      (this.#deps.delivery.window ?? 1) <= 1
    );
  }

  /**
   * Waits for the answer to the progress sent last ({@link #recordAhead}). A write that failed
   * (Redis unreachable, replicas not confirming) is recorded again until it counts: nothing else
   * is delivered meanwhile. `fenced`: the lease is gone, the lane must end; `reloaded`: the
   * position moved elsewhere and the lane's state was loaded again.
   */
  async #settleRecording(): Promise<'recorded' | 'fenced' | 'reloaded'> {
    const recording = this.#recording;
    if (!recording) return 'recorded';
    const { step } = recording;
    let outcome: AdvanceOutcome;
    for (let attempt = 1; ; attempt++) {
      try {
        outcome = await (attempt === 1
          ? recording.sent.outcome
          : this.#deps.recorder.record(step, this.#stopping.signal));
        break;
      } catch (err) {
        if (this.#stopping.signal.aborted) throw err;
        if (attempt === 1 || attempt % 10 === 0)
          this.#log.warn({ err, attempt, from: step.from, to: step.to }, 'recording progress failed; retrying');
        await sleep(Math.min(2000, 100 * attempt), this.#stopping.signal);
      }
    }
    this.#recording = undefined;
    faultPoint('sender-after-record');
    if (outcome === 'fenced') {
      this.#log.warn({ sequence: step.to }, 'lease lost while recording progress; stopping the lane');
      this.#deps.onFenced();
      return 'fenced';
    }
    if (outcome === 'out-of-turn') {
      this.#log.warn({ sequence: step.to }, 'delivered position moved elsewhere; reloading');
      await this.#reload();
      return 'reloaded';
    }
    // Answered before the lane moved on (it waited for the reply): move on now.
    if (this.#buffer.delivered < step.to) this.#buffer.advance();
    this.#deps.metrics.delivered.set({ destination: this.destination }, step.to);
    this.#deps.metrics.buffered.set({ destination: this.destination }, this.#buffer.size);
    return 'recorded';
  }

  async #settle(result: Result): Promise<Settlement> {
    switch (result.kind) {
      case 'none':
        return 'dropped';
      case 'dead':
        return this.#onDeadLetter(result, result.body, 'transform');
      case 'value':
        return this.#deliver(result);
    }
  }

  async #deliver(result: Result): Promise<Settlement> {
    const sent = await sendOne(this.#stepDeps(), result);
    if (typeof sent === 'string') return sent;
    await deadLetterDelivery(this.#deps.redis, this.#deps.keys, this.destination, result, sent.refused);
    return this.#onDeadLetter(result, sent.refused, 'delivery');
  }

  /** What the single, batch and window steps need from the lane (single-step.ts, batch-step.ts, window-step.ts). */
  #stepDeps(): WindowStepDeps {
    const { destination, leaseValue } = this;
    return {
      destination,
      delivery: this.#deps.delivery,
      retry: this.#deps.config.retry,
      buffer: this.#buffer,
      leaseValid: this.#deps.leaseValid,
      metrics: this.#deps.metrics,
      logger: this.#log,
      stopping: this.#stopping.signal,
      lost: this.#lost.signal,
      record: (from, to) =>
        this.#deps.recorder.record(
          {
            destination,
            leaseValue,
            from,
            to,
            skipped: false,
            history: this.#historyLength(),
            inStream: inStream(this.#buffer, from, to),
          },
          this.#stopping.signal,
        ),
      onFenced: () => this.#deps.onFenced(),
      reload: () => this.#reload(),
      paused: () => this.#checkPaused(),
      woken: () => this.#woken(),
    };
  }

  async #onDeadLetter(result: Result, reason: string, stage: 'transform' | 'delivery'): Promise<Settlement> {
    const { redis, keys } = this.#deps;
    // An operator may have retried or skipped a dead result while it sat in this lane's memory:
    // act only on what Redis still holds (blocking checks that atomically with the marker).
    if (this.#deps.config.onDeadLetter === 'skip') {
      if (stage === 'transform' && !(await holdsDeadResult(redis, keys, this.destination, result.sequence)))
        return this.#reloadReleased(result);
      this.#countDeadLetter(result);
      this.#log.warn({ sequence: result.sequence, id: result.id, reason }, 'dead letter skipped (onDeadLetter: skip)');
      return 'skipped';
    }
    if (!(await blockOnDeadLetter(redis, keys, this.destination, result.sequence, stage)))
      return this.#reloadReleased(result);
    this.#countDeadLetter(result);
    this.#blockedAt = result.sequence;
    this.#deps.metrics.blocked.set({ destination: this.destination }, 1);
    this.#log.error(
      { sequence: result.sequence, id: result.id, reason },
      'destination blocked by a dead letter (onDeadLetter: block); later messages wait for an operator',
    );
    return 'blocked';
  }

  #countDeadLetter(result: Result): void {
    if (this.#countedDeadLetter === result.sequence) return;
    this.#countedDeadLetter = result.sequence;
    this.#deps.metrics.deadLetters.inc({ destination: this.destination });
  }

  async #reloadReleased(result: Result): Promise<Settlement> {
    this.#log.info({ sequence: result.sequence, id: result.id }, 'dead letter released by an operator; reloading');
    await this.#reload();
    return 'reloaded';
  }

  /** While blocked, looks now and then whether an operator released the destination (or asked for a replay). */
  async #waitWhileBlocked(): Promise<void> {
    await sleep(BLOCKED_POLL_MS, this.#stopping.signal);
    if (this.#stopping.signal.aborted) return;
    await this.#checkPaused();
    if ((await readBlocked(this.#deps.redis, this.#deps.keys, this.destination)) === undefined) {
      this.#log.info('destination released by an operator; resuming');
      await this.#reload();
    }
  }

  /**
   * Whether the destination is paused, from the in-memory flag, read again from Redis (with
   * any replay request) once it is older than {@link PAUSE_CHECK_MS}. A failed read keeps the
   * last known state.
   */
  async #checkPaused(): Promise<boolean> {
    if (performance.now() - this.#pauseCheckedAt >= PAUSE_CHECK_MS) await this.#readControl();
    return this.#paused;
  }

  async #readControl(): Promise<void> {
    this.#pauseCheckedAt = performance.now();
    const control = await readLaneControl(this.#deps.redis, this.#deps.keys, this.destination);
    this.#setPaused(control.paused);
    // Replay is offered for HTTP destinations only (the CLI refuses the others).
    this.#replay = this.#deps.config.type === 'http' ? control.replay : undefined;
  }

  /** Values are kept for replay only where replay is offered: HTTP destinations. */
  #historyLength(): number {
    return this.#deps.config.type === 'http' ? this.#deps.historyLength : 0;
  }

  /** Runs an operator's replay request between two sequences, then carries on where it was. */
  async #runReplay(request: ReplayRequest): Promise<'fenced' | undefined> {
    const end = await runReplay(
      {
        destination: this.destination,
        config: this.#deps.config,
        delivery: this.#deps.delivery,
        redis: this.#deps.redis,
        keys: this.#deps.keys,
        logger: this.#log,
        leaseValue: this.leaseValue,
        delivered: this.#buffer.delivered,
        leaseValid: this.#deps.leaseValid,
        paused: () => this.#checkPaused(),
        stopping: this.#stopping.signal,
        lost: this.#lost.signal,
      },
      request,
    );
    // Interrupted by a pause or a stop, the request stays in Redis and is read again later.
    this.#replay = undefined;
    if (end === 'gone') this.#log.warn({ replay: request.id }, 'replay request deleted meanwhile; carrying on');
    if (end !== 'fenced') return undefined;
    this.#log.warn({ replay: request.id }, 'lease lost during a replay; stopping the lane');
    this.#deps.onFenced();
    return 'fenced';
  }

  #setPaused(paused: boolean): void {
    if (paused !== this.#paused) {
      this.#log.info(paused ? 'destination paused by an operator' : 'destination resumed by an operator');
    }
    this.#paused = paused;
    this.#deps.metrics.paused.set({ destination: this.destination }, paused ? 1 : 0);
  }

  /** While paused, looks now and then whether an operator resumed the destination. */
  async #waitWhilePaused(): Promise<void> {
    await sleep(PAUSED_POLL_MS, this.#stopping.signal);
    if (this.#stopping.signal.aborted) return;
    await this.#readControl();
  }

  #sleepUntilWoken(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, timeoutMs);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Resolves at the next {@link offer} or {@link stop}. */
  #woken(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  #gapCheckMs(): number {
    return Math.max(50, Math.min(5000, Math.floor(this.#deps.gapTimeoutMs / 2)));
  }

  #clearGap(): void {
    if (this.#gap === undefined) return;
    this.#gap = undefined;
    this.#deps.metrics.gapAge.set({ destination: this.destination }, 0);
  }

  /**
   * The next sequence is missing. That is normal while its transform runs; it is a gap when it
   * lasts: after `gapTimeoutMs` the lane looks whether the message still exists anywhere, and
   * one found nowhere (lost in a failover without WAIT, trimmed by hand) becomes a GAP_LOST
   * dead letter, which the destination's onDeadLetter policy handles: never an endless, silent
   * stall. A sequence not yet assigned is no gap: the destination is just idle.
   */
  async #watchGap(): Promise<void> {
    const { redis, keys, gapTimeoutMs, metrics } = this.#deps;
    const next = this.#buffer.next;
    if (this.#buffer.waitingFor() === undefined) {
      const assigned = Number((await redis.hget(keys.sequences, this.destination)) ?? 0);
      if (assigned < next) return this.#clearGap();
    }
    const now = performance.now();
    if (this.#gap?.sequence !== next) this.#gap = { sequence: next, since: now };
    const waited = now - this.#gap.since;
    metrics.gapAge.set({ destination: this.destination }, waited / 1000);
    if (waited < gapTimeoutMs) return;
    if (await sequenceExists(redis, keys, this.destination, next)) {
      // Still on its way (a slow or retried transform): wait another period before looking again.
      this.#log.info(
        { sequence: next, waitedMs: Math.round(waited) },
        'still waiting for the next sequence; it is on its way',
      );
      this.#gap.since = now;
      return;
    }
    const reason = `GAP_LOST: sequence ${next} exists nowhere (lost in a Redis failover without WAIT, or trimmed by hand)`;
    this.#log.error({ sequence: next, waitedMs: Math.round(waited) }, 'sequence lost; handling it as a dead letter');
    metrics.lostSequences.inc({ destination: this.destination });
    await recordLostSequence(redis, keys, this.destination, next, reason);
    this.#clearGap();
    await this.#reload();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
