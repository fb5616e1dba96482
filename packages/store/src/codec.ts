/**
 * How a message travels through Redis: the fields of input-stream entries, result-stream
 * entries and reorder-buffer values, and their (de)coding. Field names are one letter to keep
 * entries small; docs/data-model.md lists them.
 */

/** One accepted message for one destination: an input-stream entry. */
export interface InputEntry {
  /** Stream entry id. */
  entryId: string;
  /** Message id: the client's `id`, or one ingest made. */
  id: string;
  destination: string;
  sequence: number;
  /** Accept time, ms since the epoch. */
  acceptedAt: number;
  /** The client's payload, as JSON text. */
  payload: string;
}

/** What became of a message: deliver a value, deliver nothing, or a dead letter. */
export type ResultKind = 'value' | 'none' | 'dead';

const KIND_TO_WIRE: Record<ResultKind, string> = { value: 'v', none: 'n', dead: 'x' };
const WIRE_TO_KIND: Record<string, ResultKind> = { v: 'value', n: 'none', x: 'dead' };

/** A transform's outcome for one (message, destination). */
export interface Result {
  kind: ResultKind;
  id: string;
  sequence: number;
  acceptedAt: number;
  attempts: number;
  /** The transformed payload as JSON text ("value"), the last error ("dead"), or "". */
  body: string;
}

/** A result as read from a destination's result stream. */
export interface ResultEntry extends Result {
  entryId: string;
}

/** The single-letter wire form of a result kind. */
export function kindToWire(kind: ResultKind): string {
  return KIND_TO_WIRE[kind];
}

/** Turns a flat [field, value, ...] stream entry into a lookup. */
function fieldMap(fields: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  return map;
}

/** Decodes an input-stream entry; undefined when it is not one of ours (never crash on it). */
export function decodeInputEntry(entryId: string, fields: readonly string[] | null): InputEntry | undefined {
  if (!fields) return undefined;
  const f = fieldMap(fields);
  const id = f.get('m');
  const destination = f.get('d');
  const sequence = Number(f.get('s'));
  const payload = f.get('p');
  if (!id || !destination || !Number.isSafeInteger(sequence) || sequence < 1 || payload === undefined) {
    return undefined;
  }
  return { entryId, id, destination, sequence, acceptedAt: Number(f.get('t') ?? 0), payload };
}

/** Decodes a result-stream entry; undefined when malformed. */
export function decodeResultEntry(entryId: string, fields: readonly string[] | null): ResultEntry | undefined {
  if (!fields) return undefined;
  const f = fieldMap(fields);
  const kind = WIRE_TO_KIND[f.get('k') ?? ''];
  const sequence = Number(f.get('s'));
  const id = f.get('m');
  if (!kind || !id || !Number.isSafeInteger(sequence) || sequence < 1) return undefined;
  return {
    entryId,
    kind,
    id,
    sequence,
    acceptedAt: Number(f.get('t') ?? 0),
    attempts: Number(f.get('a') ?? 1),
    body: f.get('p') ?? '',
  };
}

const SEP = '\x1f';

/** Encodes a result for a reorder-buffer hash value (the body last, so it may hold anything). */
export function encodeBuffered(result: Result): string {
  return [KIND_TO_WIRE[result.kind], result.id, result.acceptedAt, result.attempts, result.body].join(SEP);
}

/** Decodes a reorder-buffer value; undefined when malformed. */
export function decodeBuffered(sequence: number, value: string): Result | undefined {
  const parts: string[] = [];
  let start = 0;
  for (let n = 0; n < 4; n++) {
    const end = value.indexOf(SEP, start);
    if (end < 0) return undefined;
    parts.push(value.slice(start, end));
    start = end + 1;
  }
  const kind = WIRE_TO_KIND[parts[0]!];
  if (!kind) return undefined;
  return {
    kind,
    id: parts[1]!,
    sequence,
    acceptedAt: Number(parts[2]),
    attempts: Number(parts[3]),
    body: value.slice(start),
  };
}
