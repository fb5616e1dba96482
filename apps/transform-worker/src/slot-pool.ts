/**
 * The transform slots of one worker process (WORKER_CONCURRENCY), shared by its engines: one
 * {@link TransformWorker} per shard (`RESEQ_SHARDS`), each reading its own shard's input stream.
 * An entry read while every slot is taken (several engines' reads came back at once) waits in its
 * engine, pending with this consumer, and starts as soon as a slot frees: the process never runs
 * more than its concurrency.
 */

/** Transform slots shared by the engines of one worker. */
export class SlotPool {
  readonly #engines = new Set<EngineSlots<unknown>>();
  #waiters: (() => void)[] = [];

  /** @param capacity transforms in flight at most, over every engine (WORKER_CONCURRENCY). */
  constructor(readonly capacity: number) {}

  /** Transforms in flight over every engine. */
  get inFlight(): number {
    let total = 0;
    for (const engine of this.#engines) total += engine.running();
    return total;
  }

  /** Slots free now (negative while over capacity). */
  get free(): number {
    return this.capacity - this.inFlight;
  }

  /** @internal An engine joins the pool. */
  join(engine: EngineSlots<unknown>): void {
    this.#engines.add(engine);
  }

  /** Resolves at the next {@link wake}. */
  changed(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Slots changed: engines start what waits for a slot, then every waiter looks again. */
  wake(): void {
    for (const engine of this.#engines) engine.startWaiting();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** One engine's share of a {@link SlotPool}: what it runs, and what it read that waits for a slot. */
export class EngineSlots<T> {
  readonly #pool: SlotPool;
  readonly #start: (item: T) => void;
  #waiting: { item: T; since: number }[] = [];
  #closed = false;

  /**
   * @param running this engine's transforms in flight.
   * @param start starts one admitted item (taking a slot by the time it returns).
   */
  constructor(
    pool: SlotPool,
    readonly running: () => number,
    start: (item: T) => void,
  ) {
    this.#pool = pool;
    this.#start = start;
    pool.join(this as EngineSlots<unknown>);
  }

  /** The shared pool. */
  get pool(): SlotPool {
    return this.#pool;
  }

  /** Slots this engine may still fill: the pool's free slots less what waits here already. */
  get free(): number {
    return this.#pool.free - this.#waiting.length;
  }

  /** What waits for a slot, oldest first (a copy: look at it once, not in a loop). */
  get waiting(): readonly T[] {
    return this.#waiting.map((w) => w.item);
  }

  /** Starts `item` now where a slot is free and nothing waits before it, else queues it. */
  admit(item: T): void {
    if (!this.#closed && this.#waiting.length === 0 && this.#pool.free > 0) this.#start(item);
    else this.#waiting.push({ item, since: Date.now() });
  }

  /** Starts waiting items while slots are free (the pool calls it when slots free up). */
  startWaiting(): void {
    while (!this.#closed && this.#waiting.length > 0 && this.#pool.free > 0) this.#start(this.#waiting.shift()!.item);
  }

  /** Waiting items queued at least `ms` ago, their clock reset (to keep them from peers' XAUTOCLAIM). */
  waitingLongerThan(ms: number, now = Date.now()): T[] {
    const stale = this.#waiting.filter((w) => now - w.since >= ms);
    for (const w of stale) w.since = now;
    return stale.map((w) => w.item);
  }

  /** Starts nothing more; returns (and forgets) what still waits. */
  close(): T[] {
    this.#closed = true;
    const left = this.#waiting.map((w) => w.item);
    this.#waiting = [];
    return left;
  }
}

/**
 * Slots an engine's entries take: every transform in flight (the entries it holds, less the
 * settled ones whose outcome is being recorded), and the settled ones beyond the pool's
 * capacity. So a slot frees as soon as its transform settles, and the next read does not wait for
 * the `complete` round trip of the last batch; yet where Redis is slow to record, an engine holds
 * at most `capacity` settled outcomes besides its transforms, and reads nothing more until they
 * are written.
 * @param held entries the engine holds: running or being recorded.
 * @param recording of `held`, those settled and being recorded.
 */
export function slotsTaken(held: number, recording: number, capacity: number): number {
  return held - recording + Math.max(0, recording - capacity);
}

/**
 * How many entries an engine reads beyond its free slots. A read is a round trip that, on a busy
 * host, can take longer than a batch of fast transforms: reading only what the free slots can
 * start would leave them empty during every read. So the engine reads ahead as many entries as
 * its slots are expected to finish during one read: `capacity × read time / transform time`
 * (moving averages), at most a batch. They wait for a slot, each for about one read's time. Slow
 * transforms (a round trip is a small part of one) read nothing ahead: an entry waiting here is
 * one a less busy peer could have taken.
 */
export class ReadAhead {
  #transformMs: number | undefined;
  #readMs: number | undefined;

  /** A transform settled `ms` after it started. */
  settled(ms: number): void {
    this.#transformMs = average(this.#transformMs, ms);
  }

  /**
   * A read that returned all it asked for took `ms` (a read that returned less waited for new
   * entries: it says nothing about the round trip, so it is not counted).
   */
  read(ms: number): void {
    this.#readMs = average(this.#readMs, ms);
  }

  /** Whether a transform takes less than a read: slots free up while a read is under way. */
  get fast(): boolean {
    return this.#transformMs !== undefined && this.#readMs !== undefined && this.#transformMs < this.#readMs;
  }

  /** Entries to read beyond the free slots (see the class). */
  extra(capacity: number, batch: number): number {
    if (this.#transformMs === undefined || this.#readMs === undefined) return 0;
    const finishing = (capacity * this.#readMs) / Math.max(this.#transformMs, 0.001);
    return Math.floor(Math.min(batch, finishing));
  }
}

function average(last: number | undefined, sample: number): number {
  return last === undefined ? sample : 0.9 * last + 0.1 * sample;
}
