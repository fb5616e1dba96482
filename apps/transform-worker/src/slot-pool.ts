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

  /** What waits for a slot, oldest first. */
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
