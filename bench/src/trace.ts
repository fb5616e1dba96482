/**
 * The analysis of one run's trace: what the producer had accepted (per message: destination,
 * the sequence the system answered, accept time, planned transform time) against what the sinks
 * received (message index and receive time, in arrival order). Pure functions, no I/O.
 *
 * Ideal ordered latency: for message i of a destination (in the order the system accepted them)
 * the earliest an ordered pipeline could deliver it is the latest of (accept time + transform
 * time) over messages 1..i of that destination; a message cannot go out before its own
 * transform is done, nor before any earlier message of its destination. Overhead is the actual
 * delivery time minus that ideal.
 */

/** One message of the run, as the producer saw it. */
export interface TracedMessage {
  destination: number;
  /** Planned transform time (of its first run), in ms. */
  plannedMs: number;
  /** When the producer got the system's acceptance, in ms since the epoch; undefined: never accepted. */
  acceptedAt: number | undefined;
  /** The destination sequence the system answered (its order for that destination). */
  sequence: number | undefined;
}

/** Input of {@link analyzeTrace}. */
export interface TraceInput {
  /** Indexed by the message index `k`. */
  messages: readonly TracedMessage[];
  /** Message index of each delivery, in arrival order (repeats included). */
  deliveryK: ArrayLike<number>;
  /** Receive time of each delivery, ms since the epoch (same indexes as deliveryK). */
  deliveryAt: ArrayLike<number>;
  /** Messages accepted before this time are warm-up: delivered and ordered, but not in the statistics. */
  measureFrom?: number;
}

/** Percentiles of a sample, in ms. `Infinity` where messages were never delivered. */
export interface Summary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** What a run's trace comes to. */
export interface TraceAnalysis {
  accepted: number;
  /** Accepted after the warm-up: the messages the statistics cover. */
  measured: number;
  /** Distinct accepted messages that reached the sink. */
  delivered: number;
  /** Accepted messages the sink never received. */
  undelivered: number;
  /** Receipts of a message already received. */
  duplicates: number;
  /** Receipts of a message index the producer never had accepted. */
  unknown: number;
  /**
   * Messages received after a message of the same destination with a higher sequence (first
   * receipts only: a repeat after a reconnect is a duplicate, not a violation).
   */
  orderViolations: number;
  /** Accept to delivery, over measured messages; undelivered ones count as Infinity. */
  latencyMs: Summary;
  /** Accept to delivery over the measured messages that were delivered (how late those were). */
  deliveredLatencyMs: Summary;
  /** Delivery minus the ideal ordered delivery time, over measured messages. */
  overheadMs: Summary;
  /**
   * Deliveries per second between the 10th and the 90th percentile receive time, over every
   * accepted message (the window leaves start-up and drain out; a system that delivered only
   * warm-up messages still has a rate).
   */
  throughputPerSecond: number;
  firstAcceptAt: number | undefined;
  lastDeliveryAt: number | undefined;
}

/** Per message (by `k`): first receive time and ideal ordered delivery time (NaN where none). */
export interface PerMessage {
  deliveredAt: Float64Array;
  idealAt: Float64Array;
}

/** Nearest-rank percentile of an ascending array (`p` in 0..100); NaN for an empty one. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Summary of `values` plus `missing` values that are Infinity. */
export function summarize(values: readonly number[], missing = 0): Summary {
  const sorted = Float64Array.from(values).sort();
  const all = missing > 0 ? Float64Array.from([...sorted, ...new Array<number>(missing).fill(Infinity)]) : sorted;
  return {
    count: all.length,
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    max: all.length === 0 ? NaN : all[all.length - 1]!,
  };
}

/**
 * The ideal ordered delivery time of each message of one destination, given in the order the
 * system accepted them: the running maximum of accept time + transform time.
 */
export function idealDeliveryTimes(inOrder: readonly { acceptedAt: number; plannedMs: number }[]): number[] {
  const ideal: number[] = [];
  let latest = -Infinity;
  for (const m of inOrder) {
    latest = Math.max(latest, m.acceptedAt + m.plannedMs);
    ideal.push(latest);
  }
  return ideal;
}

/**
 * First receipt per message, duplicates, unknown receipts and order violations, from the
 * deliveries in arrival order.
 */
export function scanDeliveries(
  input: Pick<TraceInput, 'messages' | 'deliveryK' | 'deliveryAt'>,
): Pick<TraceAnalysis, 'duplicates' | 'unknown' | 'orderViolations'> & { deliveredAt: Float64Array } {
  const { messages, deliveryK, deliveryAt } = input;
  const deliveredAt = new Float64Array(messages.length).fill(NaN);
  const highest = new Map<number, number>();
  let duplicates = 0;
  let unknown = 0;
  let orderViolations = 0;
  for (let i = 0; i < deliveryK.length; i++) {
    const k = deliveryK[i]!;
    const message = messages[k];
    if (message?.acceptedAt === undefined || message.sequence === undefined) {
      unknown++;
      continue;
    }
    if (!Number.isNaN(deliveredAt[k]!)) {
      duplicates++;
      continue;
    }
    deliveredAt[k] = deliveryAt[i]!;
    const before = highest.get(message.destination) ?? 0;
    if (message.sequence < before) orderViolations++;
    else highest.set(message.destination, message.sequence);
  }
  return { duplicates, unknown, orderViolations, deliveredAt };
}

/** Analyses one run's trace. */
export function analyzeTrace(input: TraceInput): { analysis: TraceAnalysis; perMessage: PerMessage } {
  const { messages } = input;
  const measureFrom = input.measureFrom ?? -Infinity;
  const scan = scanDeliveries(input);
  const { deliveredAt } = scan;

  // Accepted messages per destination, in the system's order.
  const byDestination = new Map<number, number[]>();
  let firstAcceptAt: number | undefined;
  messages.forEach((m, k) => {
    if (m.acceptedAt === undefined || m.sequence === undefined) return;
    firstAcceptAt = firstAcceptAt === undefined ? m.acceptedAt : Math.min(firstAcceptAt, m.acceptedAt);
    let list = byDestination.get(m.destination);
    if (!list) byDestination.set(m.destination, (list = []));
    list.push(k);
  });
  const idealAt = new Float64Array(messages.length).fill(NaN);
  for (const ks of byDestination.values()) {
    ks.sort((a, b) => messages[a]!.sequence! - messages[b]!.sequence!);
    const ideal = idealDeliveryTimes(
      ks.map((k) => ({ acceptedAt: messages[k]!.acceptedAt!, plannedMs: messages[k]!.plannedMs })),
    );
    ks.forEach((k, i) => (idealAt[k] = ideal[i]!));
  }

  let accepted = 0;
  let measured = 0;
  let delivered = 0;
  let missing = 0;
  let lastDeliveryAt: number | undefined;
  const latencies: number[] = [];
  const overheads: number[] = [];
  const receiveTimes: number[] = [];
  messages.forEach((m, k) => {
    if (m.acceptedAt === undefined || m.sequence === undefined) return;
    accepted++;
    const at = deliveredAt[k]!;
    if (!Number.isNaN(at)) {
      delivered++;
      receiveTimes.push(at);
      lastDeliveryAt = lastDeliveryAt === undefined ? at : Math.max(lastDeliveryAt, at);
    }
    if (m.acceptedAt < measureFrom) return;
    measured++;
    if (Number.isNaN(at)) {
      missing++;
      return;
    }
    latencies.push(at - m.acceptedAt);
    overheads.push(at - idealAt[k]!);
  });

  const analysis: TraceAnalysis = {
    accepted,
    measured,
    delivered,
    undelivered: accepted - delivered,
    duplicates: scan.duplicates,
    unknown: scan.unknown,
    orderViolations: scan.orderViolations,
    latencyMs: summarize(latencies, missing),
    deliveredLatencyMs: summarize(latencies),
    overheadMs: summarize(overheads, missing),
    throughputPerSecond: steadyThroughput(receiveTimes),
    firstAcceptAt,
    lastDeliveryAt,
  };
  return { analysis, perMessage: { deliveredAt, idealAt } };
}

/**
 * Deliveries per second between the 10th and the 90th percentile receive time (start-up and
 * drain left out); with fewer than 10 receipts, over all of them.
 */
export function steadyThroughput(receiveTimes: readonly number[]): number {
  const n = receiveTimes.length;
  if (n < 2) return 0;
  const sorted = Float64Array.from(receiveTimes).sort();
  const low = n >= 10 ? Math.floor(n * 0.1) : 0;
  const high = n >= 10 ? Math.ceil(n * 0.9) - 1 : n - 1;
  const span = sorted[high]! - sorted[low]!;
  if (span <= 0) return 0;
  return ((high - low) / span) * 1000;
}
