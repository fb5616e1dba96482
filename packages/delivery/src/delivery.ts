/**
 * The contract between a sender lane and a destination adapter: send one message, say whether
 * it was taken, and whether a failure is worth retrying.
 */

/** One message to deliver. */
export interface DeliveryRequest {
  destination: string;
  sequence: number;
  messageId: string;
  /** The transformed payload, as JSON text (sent as is, never re-encoded). */
  payload: string;
}

/** What one delivery attempt came to. */
export type DeliveryOutcome =
  | { ok: true; status?: number }
  | {
      ok: false;
      /** Worth another attempt (5xx, 408, 409, 425, 429, timeouts, network errors). */
      retryable: boolean;
      status?: number;
      /** A short reason for logs and dead letters. */
      error: string;
      /** A destination's Retry-After, in ms, where it sent one. */
      retryAfterMs?: number;
    };

/** A destination adapter. */
export interface Delivery {
  /**
   * How many sends the lane may have outstanding at once (default 1: one at a time, as HTTP).
   * An adapter with a window above 1 keeps the sends in call order on one connection, answers
   * them in that order, and fails every outstanding send (retryable) when one fails, so the lane
   * can start again from the first one it has not recorded.
   */
  readonly window?: number;
  /**
   * One attempt; never throws for delivery failures, only reports them. `mayWrite` is asked at
   * the last moment before the request goes on the wire (after connecting); when it answers
   * false the attempt ends unsent, as a retryable failure. The sender passes its lease check, so
   * a process paused between its own check and the write cannot send out of turn when it wakes.
   */
  send(request: DeliveryRequest, signal?: AbortSignal, mayWrite?: () => boolean): Promise<DeliveryOutcome>;
  /**
   * Most consecutive messages one {@link sendBatch} may carry (an HTTP destination's
   * `batch.maxMessages`); absent or 1: the adapter sends one message per request.
   */
  readonly maxBatch?: number;
  /**
   * One attempt to deliver consecutive messages, in sequence order, in one request (only where
   * {@link maxBatch} is above 1): taken or refused as a whole. Reports failures as {@link send}.
   */
  sendBatch?(
    requests: readonly DeliveryRequest[],
    signal?: AbortSignal,
    mayWrite?: () => boolean,
  ): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}

/**
 * The `Idempotency-Key` of one message to one destination: the same on every redelivery, and
 * different for different messages even when a client reuses an id after its TTL.
 */
export function idempotencyKey(request: Pick<DeliveryRequest, 'destination' | 'sequence' | 'messageId'>): string {
  return `${request.destination}:${request.sequence}:${request.messageId}`;
}
