/**
 * A per-destination reorder buffer (the heart of Apache Camel's Resequencer, with gap-free
 * sequences instead of a timeout). It knows the last settled sequence and holds the results
 * that arrived ahead of their turn; only the result for `delivered + 1` is ever released.
 */

/** What {@link ReorderBuffer.offer} did with a result. */
export type OfferOutcome = 'buffered' | 'duplicate';

/** Holds out-of-order items of one destination until their turn. */
export class ReorderBuffer<T> {
  readonly #held = new Map<number, T>();
  #delivered: number;

  /** @param delivered the last sequence already settled (0 when none). */
  constructor(delivered = 0) {
    if (!Number.isSafeInteger(delivered) || delivered < 0) throw new RangeError(`invalid position ${delivered}`);
    this.#delivered = delivered;
  }

  /** The last settled sequence. */
  get delivered(): number {
    return this.#delivered;
  }

  /** The sequence whose turn it is. */
  get next(): number {
    return this.#delivered + 1;
  }

  /** How many results are held. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Takes a result. One at or below the settled position, or one already held, is a duplicate
   * (a recovered worker finishing late, a redelivered stream entry) and is ignored.
   */
  offer(sequence: number, item: T): OfferOutcome {
    if (!Number.isSafeInteger(sequence) || sequence < 1) throw new RangeError(`invalid sequence ${sequence}`);
    if (sequence <= this.#delivered || this.#held.has(sequence)) return 'duplicate';
    this.#held.set(sequence, item);
    return 'buffered';
  }

  /** The result whose turn it is, if it has arrived. */
  peek(): T | undefined {
    return this.#held.get(this.#delivered + 1);
  }

  /**
   * The held result of a later turn, if it has arrived (a lane with a delivery window sends a
   * few turns ahead, but still settles them one turn after another).
   */
  at(sequence: number): T | undefined {
    return sequence > this.#delivered ? this.#held.get(sequence) : undefined;
  }

  /**
   * Settles the current turn (after the destination took it, or it was dropped or skipped) and
   * returns its result. Throws when that result has not arrived: settling a gap would reorder.
   */
  advance(): T {
    const next = this.#delivered + 1;
    const item = this.#held.get(next);
    if (item === undefined) throw new Error(`sequence ${next} has not arrived`);
    this.#held.delete(next);
    this.#delivered = next;
    return item;
  }

  /** The lowest held sequence, when the next one is missing (the gap's far edge), else undefined. */
  waitingFor(): { next: number; lowestHeld: number } | undefined {
    if (this.#held.size === 0 || this.#held.has(this.#delivered + 1)) return undefined;
    let lowest = Infinity;
    for (const seq of this.#held.keys()) if (seq < lowest) lowest = seq;
    return { next: this.#delivered + 1, lowestHeld: lowest };
  }
}
