/**
 * The Redis key schema: the only place in reseq that builds a key name. Every key of one shard
 * of a pipeline shares one hash tag (`{<prefix>}` with one shard; shards.ts gives the others), so
 * every script touches one Cluster slot. docs/data-model.md describes each key.
 */

/** Consumer group of the transform workers on the input stream. */
export const WORKER_GROUP = 'workers';

/** Key names of one pipeline (one RESEQ_PREFIX), or of one of its shards (RESEQ_SHARDS). */
export class KeySchema {
  /** The hash tag shared by every key, e.g. `{reseq}`. */
  readonly tag: string;

  /**
   * @param tag the hash tag; default `{<prefix>}` (one shard, and the pipeline-wide keys).
   * @param shard the shard these keys belong to (0 with one shard).
   */
  constructor(
    readonly prefix: string,
    tag?: string,
    readonly shard = 0,
  ) {
    this.tag = tag ?? `{${prefix}}`;
  }

  /** Stream of accepted messages, one entry per (message, destination); group `workers`. */
  get input(): string {
    return `${this.tag}:in`;
  }
  /** Hash: destination -> last sequence assigned by ingest. */
  get sequences(): string {
    return `${this.tag}:seq`;
  }
  /** String with TTL: a client id's sequences, for de-duplicating retries. */
  clientId(id: string): string {
    return `${this.tag}:id:${id}`;
  }
  /** Stream of dead letters: payload, attempts, last error. */
  get deadLetters(): string {
    return `${this.tag}:dlq`;
  }
  /**
   * Hash: sequence -> id of its entry in the dead-letter stream, one per dead letter of a
   * destination (at most one per sequence). Written with every dead-letter entry; `status`
   * counts it, `dlq retry` and `dlq skip` find and remove entries through it.
   */
  deadLetterIndex(destination: string): string {
    return `${this.tag}:dead:${destination}`;
  }
  /**
   * Set of a destination's sequences passed over without delivery because of a dead letter
   * (`onDeadLetter: skip`, `dlq skip`): a result that still turns up for one is dead-lettered
   * as late, never delivered.
   */
  skipped(destination: string): string {
    return `${this.tag}:skipped:${destination}`;
  }
  /** Stream of a destination's transform results, in completion order. */
  results(destination: string): string {
    return `${this.tag}:res:${destination}`;
  }
  /** Hash: sequence -> encoded result, a destination's out-of-order results. */
  buffer(destination: string): string {
    return `${this.tag}:buf:${destination}`;
  }
  /**
   * Stream: a destination's retained history, the values it was delivered (entry id
   * `<sequence>-0`, fields `m`, `t`, `a`, `p`), appended by the `advance` script and capped at
   * about `sender.historyLength` entries (`MAXLEN ~`): what `reseq replay` delivers again.
   */
  history(destination: string): string {
    return `${this.tag}:hist:${destination}`;
  }
  /**
   * Hash: a destination's pending replay request (`id`, `from`, `requested`, `at`; the sender
   * adds `to` and `next` as it replays), written by `reseq replay`, deleted by the sender once
   * the replay is done.
   */
  replay(destination: string): string {
    return `${this.tag}:replay:${destination}`;
  }
  /** Hash: destination -> last sequence delivered (answered 2xx or otherwise settled). */
  get delivered(): string {
    return `${this.tag}:pos`;
  }
  /** Hash: destination -> sequence of the dead letter that blocks it. */
  get blocked(): string {
    return `${this.tag}:blocked`;
  }
  /**
   * Hash: destination -> when an operator paused it (ms since the epoch). A paused
   * destination's sender finishes the delivery in flight and starts no other until
   * `reseq destination resume` removes the field.
   */
  get paused(): string {
    return `${this.tag}:paused`;
  }
  /** String with TTL: "<sender id>|<fencing token>" of a destination's active sender. */
  lease(destination: string): string {
    return `${this.tag}:lease:${destination}`;
  }
  /** Hash: destination -> last fencing token handed out. */
  get fences(): string {
    return `${this.tag}:fence`;
  }
  /**
   * String: written right before each WAIT (RESEQ_WAIT_REPLICAS > 0), so that the WAIT covers
   * every earlier write on the master, also when the confirmed step itself wrote nothing.
   */
  get waitMark(): string {
    return `${this.tag}:wait`;
  }
  /**
   * String with TTL: "<ingest id>|<fencing token>" of the one ingest that consumes a source
   * (a Kue job type or a BullMQ queue, `source` being its id such as `bullmq:bull:orders`).
   */
  sourceLease(source: string): string {
    return `${this.tag}:source-lease:${source}`;
  }
  /** Hash: source id -> last fencing token handed out for its lease. */
  get sourceFences(): string {
    return `${this.tag}:source-fence`;
  }
  /**
   * Sorted set of hedge requests (`worker.hedgeAfterMs`): `<input entry id>|<attempt>|<consumer>`
   * scored by when the consumer asked. Taken (removed) by the first other worker with room.
   */
  get hedges(): string {
    return `${this.tag}:hedge`;
  }
  /** Sorted set: sender id -> last heartbeat, to share leases among live senders. */
  get senders(): string {
    return `${this.tag}:senders`;
  }
  /**
   * Hash of pipeline-wide facts, on the pipeline's own tag: `shards`, the shard count the keys
   * are laid out for (absent: 1). See shard-layout.ts.
   */
  get meta(): string {
    return `${this.tag}:meta`;
  }
}
