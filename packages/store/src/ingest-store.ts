/**
 * Step 1 of a message's journey: ingest writes a batch of accepted messages with one `ingest`
 * script call, which assigns each destination its sequence and appends the input-stream
 * entries atomically (see lua/ingest.lua).
 */
import { BacklogFullError } from './errors.js';
import type { KeySchema } from './keys.js';
import { runScriptConfirmed } from './replication.js';
import type { ReseqRedis } from './scripts.js';

/** One message as ingest hands it to Redis. */
export interface IngestRequest {
  /** The message id: the client's, or one ingest made. */
  id: string;
  /** Whether `id` came from the client (and is therefore de-duplicated). */
  clientId: boolean;
  destinations: readonly string[];
  /** The payload as JSON text. */
  payload: string;
}

/** What the script answered for one message. */
export interface IngestOutcome {
  sequences: Record<string, number>;
  /** The client id was seen before: nothing was written, `sequences` are the stored ones. */
  duplicate: boolean;
  /** A destination whose window was full: nothing was written for this message. */
  windowFull?: string;
}

/** Options of {@link writeIngestBatch}. */
export interface IngestBatchOptions {
  idempotencyTtlSeconds: number;
  maxBacklog: number;
  /** Most messages a destination may have accepted but not yet delivered. */
  destinationWindow: number;
  now?: number;
}

function parseRecord(record: string): Record<string, number> {
  const sequences: Record<string, number> = {};
  const parts = record.split('\n');
  for (let i = 0; i + 1 < parts.length; i += 2) sequences[parts[i]!] = Number(parts[i + 1]);
  return sequences;
}

/**
 * Makes a batch of messages durable and returns their sequences, in request order.
 * @throws {BacklogFullError} when the input stream is over its backlog limit (nothing written).
 */
export async function writeIngestBatch(
  redis: ReseqRedis,
  keys: KeySchema,
  requests: readonly IngestRequest[],
  options: IngestBatchOptions,
): Promise<IngestOutcome[]> {
  const scriptKeys = [keys.sequences, keys.input, keys.delivered];
  const args: (string | number)[] = [
    options.now ?? Date.now(),
    options.idempotencyTtlSeconds,
    options.maxBacklog,
    options.destinationWindow,
    requests.length,
  ];
  for (const request of requests) {
    let keyIndex = 0;
    if (request.clientId) {
      scriptKeys.push(keys.clientId(request.id));
      keyIndex = scriptKeys.length;
    }
    args.push(keyIndex, request.id, request.destinations.length, ...request.destinations, request.payload);
  }
  const { reply, unconfirmed } = await runScriptConfirmed(redis, keys.waitMark, 'ingest', scriptKeys, args);
  if (reply === 'BACKLOG') throw new BacklogFullError();
  // Written but not on enough replicas: no 202. The client's retry with the same id finds it
  // and confirms it then (or, where a failover lost it, writes it anew).
  if (unconfirmed) throw unconfirmed;
  return (reply as string[]).map((line) =>
    line.startsWith('!')
      ? { duplicate: false, sequences: {}, windowFull: line.slice(1) }
      : { duplicate: line.startsWith('='), sequences: parseRecord(line.slice(1)) },
  );
}
