/**
 * The wire format of delivery over TCP, shared by the sender's adapter and the reference
 * receiver: newline-delimited JSON, one message line `{"destination","sequence","id","payload"}`
 * from the sender, one `{"ack":n}` line back from the receiver.
 */

/** One message line as a receiver parses it. */
export interface TcpMessageLine {
  destination: string;
  sequence: number;
  id: string;
  payload: unknown;
}

/**
 * Encodes one message line (with its `\n`). The payload is JSON text inserted as is; JSON text
 * can only hold a raw line break as whitespace between tokens, so one with a line break is
 * compacted first (a line break would end the line).
 */
export function encodeMessageLine(message: {
  destination: string;
  sequence: number;
  messageId: string;
  payload: string;
}): string {
  const payload = /[\r\n]/.test(message.payload)
    ? JSON.stringify(JSON.parse(message.payload) as unknown)
    : message.payload;
  return `{"destination":${JSON.stringify(message.destination)},"sequence":${message.sequence},"id":${JSON.stringify(message.messageId)},"payload":${payload}}\n`;
}

/** Encodes one ack line (with its `\n`). */
export function encodeAckLine(sequence: number): string {
  return `{"ack":${sequence}}\n`;
}

/** The sequence of an ack line, or undefined when the line is not a valid ack. */
export function parseAckLine(line: string): number | undefined {
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const ack = (value as { ack?: unknown }).ack;
    return typeof ack === 'number' && Number.isSafeInteger(ack) && ack >= 1 ? ack : undefined;
  } catch {
    return undefined;
  }
}

/** A message line, or undefined when the line is not one. */
export function parseMessageLine(line: string): TcpMessageLine | undefined {
  try {
    const value = JSON.parse(line) as Partial<TcpMessageLine> | null;
    if (typeof value !== 'object' || value === null) return undefined;
    const { destination, sequence, id } = value;
    if (typeof destination !== 'string' || typeof id !== 'string') return undefined;
    if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 1) return undefined;
    if (!('payload' in value)) return undefined;
    return { destination, sequence, id, payload: value.payload };
  } catch {
    return undefined;
  }
}

/** Raised by {@link LineSplitter} when a line grows past its limit. */
export class LineTooLongError extends Error {
  override readonly name = 'LineTooLongError';
}

/**
 * Splits a byte stream into lines (`\n`, a trailing `\r` ignored), decoding UTF-8 only once a
 * line is complete so a character split across chunks stays whole.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #length = 0;

  /** @param maxLineBytes longest line accepted (default 16 MiB). */
  constructor(readonly maxLineBytes = 16 * 1024 * 1024) {}

  /**
   * Takes a chunk and returns the lines it completed.
   * @throws {LineTooLongError} when an unfinished line exceeds the limit.
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let end = chunk.indexOf(10, start); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      if (this.#length + piece.length > this.maxLineBytes) throw new LineTooLongError('line too long');
      const whole = this.#parts.length === 0 ? piece : Buffer.concat([...this.#parts, piece]);
      this.#parts = [];
      this.#length = 0;
      let text = whole.toString('utf8');
      if (text.endsWith('\r')) text = text.slice(0, -1);
      lines.push(text);
      start = end + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#length += rest.length;
      if (this.#length > this.maxLineBytes) throw new LineTooLongError('line too long');
      // Copy: the caller may reuse its chunk.
      this.#parts.push(Buffer.from(rest));
    }
    return lines;
  }
}
