/**
 * Splits a TCP byte stream into lines (`\n`, a trailing `\r` dropped) without ever holding more
 * than one line of at most `maxBytes`: a longer line is reported once as oversized and the rest
 * of it is discarded up to its newline, so the connection goes on with the next line.
 */

/** What a {@link LineReader} reports, in stream order. */
export interface LineHandlers {
  line(line: Buffer): void;
  oversized(): void;
}

/** A newline splitter with a line-length limit. */
export class LineReader {
  #parts: Buffer[] = [];
  #length = 0;
  #discarding = false;
  #closed = false;

  constructor(
    private readonly maxBytes: number,
    private readonly handlers: LineHandlers,
  ) {}

  /** Feeds bytes; handlers run synchronously for every line they complete. */
  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length && !this.#closed) {
      const newline = chunk.indexOf(10, start);
      const end = newline < 0 ? chunk.length : newline;
      if (!this.#discarding) {
        // One byte over the limit is allowed until the newline: it may be the `\r` of `\r\n`.
        if (this.#length + (end - start) > this.maxBytes + 1) {
          this.#discarding = true;
          this.#reset();
          this.handlers.oversized();
        } else if (end > start) {
          this.#parts.push(chunk.subarray(start, end));
          this.#length += end - start;
        }
      }
      if (newline < 0) break;
      if (this.#discarding) this.#discarding = false;
      else this.#emit();
      start = newline + 1;
    }
  }

  /** Ignores everything pushed from now on (the connection is being closed). */
  close(): void {
    this.#closed = true;
    this.#reset();
  }

  #emit(): void {
    let line = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#length);
    this.#reset();
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
    if (line.length > this.maxBytes) this.handlers.oversized();
    else this.handlers.line(line);
  }

  #reset(): void {
    this.#parts = [];
    this.#length = 0;
  }
}
