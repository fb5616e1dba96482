/**
 * The chaos run's verdict for one destination, from what ingest answered (sequence -> message)
 * and what the destination received on the wire (every 2xx-answered request, in arrival order).
 * Pure: no I/O, so its rules can be read (and tested) on their own.
 */

/** One request a destination answered 2xx. */
export interface WireDelivery {
  sequence: number;
  messageId: string;
  idempotencyKey: string;
  body: unknown;
  receivedAt: number;
}

/** What the checks found for one destination. */
export interface DestinationVerdict {
  destination: string;
  /** Messages ingest accepted for it (202 answers). */
  accepted: number;
  /** Distinct Idempotency-Keys received. */
  delivered: number;
  /** Accepted sequences never received. */
  lost: number[];
  /**
   * Deliveries that arrived after a higher sequence and were not a repeat of an earlier delivery:
   * out of order even after de-duplication.
   */
  reordered: number;
  /** Repeats of an earlier delivery that arrived after a higher sequence (the wire went backwards). */
  staleRepeats: number;
  /** Requests beyond the first for an Idempotency-Key (redeliveries with the same key). */
  redelivered: number;
  /** Sequences that arrived under two different Idempotency-Keys (a message delivered twice as two). */
  conflictingKeys: number;
  /** Received sequences ingest never answered, or carrying another message than ingest answered. */
  unexpected: number;
  /** Deliveries whose payload is not the transformed payload of their message. */
  wrongPayload: number;
  /** Gaps in the sequences ingest answered (1..n should be contiguous). */
  assignedGaps: number;
  /** The first few problems, in words, for the report. */
  examples: string[];
  /** Time from the 202 to the first delivery: median, 99th percentile and largest, in ms. */
  latencyMs: { p50: number; p99: number; max: number };
}

/** Everything {@link verifyDestination} needs. */
export interface VerifyInput {
  destination: string;
  /** sequence -> message index, from the 202 answers. */
  accepted: ReadonlyMap<number, number>;
  acceptedAt: ReadonlyMap<number, number>;
  /** Message id of a message index. */
  messageId: (index: number) => string;
  /** Every 2xx-answered request, in arrival order. */
  wire: readonly WireDelivery[];
}

const MAX_EXAMPLES = 12;

/**
 * Checks one destination: every accepted message delivered (after Idempotency-Key
 * de-duplication), in order, under the sequence ingest answered, with its own payload; on the wire,
 * a lower sequence after a higher one only as an immediate repeat of the last delivered.
 */
export function verifyDestination(input: VerifyInput): DestinationVerdict {
  const { destination, accepted, acceptedAt, messageId, wire } = input;
  const examples: string[] = [];
  const note = (text: string): void => {
    if (examples.length < MAX_EXAMPLES) examples.push(text);
  };
  const verdict: DestinationVerdict = {
    destination,
    accepted: accepted.size,
    delivered: 0,
    lost: [],
    reordered: 0,
    staleRepeats: 0,
    redelivered: 0,
    conflictingKeys: 0,
    unexpected: 0,
    wrongPayload: 0,
    assignedGaps: 0,
    examples,
    latencyMs: { p50: 0, p99: 0, max: 0 },
  };

  const maxAssigned = Math.max(0, ...accepted.keys());
  for (let seq = 1; seq <= maxAssigned; seq++) {
    if (!accepted.has(seq)) {
      verdict.assignedGaps++;
      note(`ingest never answered sequence ${String(seq)} (answered up to ${String(maxAssigned)})`);
    }
  }

  const keyOfSequence = new Map<number, string>();
  const seenKeys = new Set<string>();
  const latencies: number[] = [];
  let highest = 0;
  for (let k = 0; k < wire.length; k++) {
    const d = wire[k]!;
    const repeat = seenKeys.has(d.idempotencyKey);
    if (d.sequence < highest) {
      // Allowed: the last delivered message again right after itself. Anything lower is not.
      if (repeat) {
        verdict.staleRepeats++;
        note(`wire #${String(k)}: sequence ${String(d.sequence)} again after ${String(highest)} (a stale repeat)`);
      } else {
        verdict.reordered++;
        note(`wire #${String(k)}: sequence ${String(d.sequence)} first arrived after ${String(highest)}`);
      }
    }
    highest = Math.max(highest, d.sequence);
    if (repeat) {
      verdict.redelivered++;
      continue;
    }
    seenKeys.add(d.idempotencyKey);
    verdict.delivered++;

    const known = keyOfSequence.get(d.sequence);
    if (known !== undefined) {
      verdict.conflictingKeys++;
      note(`sequence ${String(d.sequence)} arrived under two keys: ${known} and ${d.idempotencyKey}`);
      continue;
    }
    keyOfSequence.set(d.sequence, d.idempotencyKey);

    const index = accepted.get(d.sequence);
    if (index === undefined || d.messageId !== messageId(index)) {
      verdict.unexpected++;
      note(
        `sequence ${String(d.sequence)} carried message ${d.messageId}; ingest answered ${index === undefined ? 'nothing' : messageId(index)} for it`,
      );
      continue;
    }
    if (!payloadMatches(d.body, index, destination, d.sequence)) {
      verdict.wrongPayload++;
      note(`sequence ${String(d.sequence)} (message ${d.messageId}) carried ${JSON.stringify(d.body).slice(0, 160)}`);
    }
    const at = acceptedAt.get(d.sequence);
    if (at !== undefined) latencies.push(Math.max(0, d.receivedAt - at));
  }

  for (const seq of [...accepted.keys()].sort((a, b) => a - b)) {
    if (!keyOfSequence.has(seq)) verdict.lost.push(seq);
  }
  if (verdict.lost.length > 0) {
    note(`lost ${String(verdict.lost.length)} sequences, first ${verdict.lost.slice(0, 10).join(', ')}`);
  }

  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  verdict.latencyMs = { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 };
  return verdict;
}

/** The random-delay transform delivers `{ ...payload, transformed, destination, sequence }`. */
function payloadMatches(body: unknown, index: number, destination: string, sequence: number): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return b.i === index && b.transformed === true && b.destination === destination && b.sequence === sequence;
}

/** Whether a verdict shows a broken guarantee (loss, order, identity or payload). */
export function verdictFailed(v: DestinationVerdict): boolean {
  return (
    v.lost.length > 0 ||
    v.reordered > 0 ||
    v.staleRepeats > 0 ||
    v.conflictingKeys > 0 ||
    v.unexpected > 0 ||
    v.wrongPayload > 0 ||
    v.assignedGaps > 0
  );
}
