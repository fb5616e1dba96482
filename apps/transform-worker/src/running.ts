/**
 * A transform in flight in one worker: an entry the worker holds in the consumer group, or a hedge
 * copy of an entry another worker holds (hedged dispatch, hedger.ts).
 */
import type { InputEntry } from '@reseq/store';

/** One transform in flight, by input entry id in the worker's map. */
export interface Running {
  entry: InputEntry;
  /** When the worker last reset the entry's idle time in the group (XCLAIM JUSTID). */
  lastTouched: number;
  /**
   * Whether this worker holds the entry in the group's pending list: false only for a hedge copy
   * of another worker's entry, until a takeover hands the entry to this worker.
   */
  owned: boolean;
  /** Aborted when another copy finished the entry (and, for a hedge copy, at shutdown). */
  cancel: AbortController;
  /** Whether a copy runs elsewhere (a hedge was asked for, or this is one): the hedge poll watches it. */
  watched: boolean;
  /** For a hedge copy taken over here: the group's delivery count, for a full run should the copy fail. */
  deliveries?: number;
}

/** A fresh record of an entry that starts running now. */
export function startRunning(entry: InputEntry, owned: boolean): Running {
  return new RunningEntry(entry, owned);
}

class RunningEntry implements Running {
  lastTouched = Date.now();
  watched: boolean;
  deliveries?: number;
  #cancel: AbortController | undefined;

  constructor(
    readonly entry: InputEntry,
    public owned: boolean,
  ) {
    this.watched = !owned;
  }

  // Made on first use: without hedged dispatch nothing ever cancels, and an AbortController per
  // message is a measurable share of a fast transform's cost.
  get cancel(): AbortController {
    return (this.#cancel ??= new AbortController());
  }
}
