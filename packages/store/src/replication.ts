/**
 * Confirming writes on replicas (`RESEQ_WAIT_REPLICAS`). A step that counts (ingest's batch, a
 * lease, recorded progress, results buffered for delivery) goes out as one pipeline: its script,
 * a write of the wait mark, and `WAIT`, back to back on one connection. WAIT then counts the
 * replicas that have every write of the master up to the mark: the step's own, and the earlier
 * ones it relied on (a client id seen before, progress recorded before), also where the step
 * itself wrote nothing. Without a policy on the connection nothing changes: no WAIT, no mark.
 *
 * On a Redis Cluster, WAIT has no key, but a Cluster client sends a whole pipeline to the master
 * of the slot its keys name (ioredis refuses a pipeline whose keys span masters), keyless
 * commands included: the mark shares the step's hash tag, so WAIT reaches the master that took
 * the step's writes, on the same connection, as WAIT requires.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChainableCommander, Redis } from 'ioredis';
import { clusterOf } from './cluster.js';
import { ReplicasUnavailableError } from './errors.js';
import { queueScriptSource, runScript, type ReseqRedis, type ScriptName } from './scripts.js';

/** How writes on one connection are confirmed. */
export interface WaitPolicy {
  /** Replicas that must confirm a step; 0 confirms nothing. */
  replicas: number;
  /** How long one WAIT may block, in ms. */
  timeoutMs: number;
}

interface Tracked {
  policy: WaitPolicy;
  /** Connection closes so far: a step that saw one may have run on two servers. */
  closes: number;
}

const tracked = new WeakMap<Redis, Tracked>();

/** How often a step refused whole with MOVED/ASK is sent again on a Cluster, and the pause before each. */
const REDIRECTED_RETRIES = 3;
const REDIRECTED_RETRY_MS = 100;

/** Whether every reply is a MOVED or ASK redirection (so none of the commands ran). */
function redirected(results: readonly [Error | null, unknown][]): boolean {
  return results.every(([err]) => err instanceof Error && /^(?:MOVED|ASK) /.test(err.message));
}

/** Makes confirmed steps on `redis` wait for `policy.replicas` replicas (none when 0). */
export function setWaitPolicy(redis: Redis, policy: WaitPolicy): void {
  if (policy.replicas <= 0 || tracked.has(redis)) return;
  const state: Tracked = { policy: { ...policy }, closes: 0 };
  tracked.set(redis, state);
  const closed = (): void => {
    state.closes++;
  };
  redis.on('close', closed);
  const cluster = clusterOf(redis);
  if (cluster) {
    // A Cluster emits `close` only when it closes whole; count every node connection's close
    // (more than the step's own master: a step unconfirmed for that is only retried).
    for (const node of cluster.nodes('all')) node.on('close', closed);
    cluster.on('+node', (node: Redis) => node.on('close', closed));
  }
}

/** The connection's policy; undefined where writes are not confirmed. */
export function waitPolicy(redis: Redis): WaitPolicy | undefined {
  return tracked.get(redis)?.policy;
}

/** What a confirmed step answered. */
export interface ConfirmedReplies {
  /** The replies of the step's own commands, in order. */
  replies: unknown[];
  /** Set when the step is not confirmed; its writes may or may not survive a failover. */
  unconfirmed: ReplicasUnavailableError | undefined;
}

/**
 * Runs the commands `queue` adds, then `SET <markKey>` and `WAIT`, in one round trip. The step
 * is unconfirmed when fewer replicas than the policy's answered in time, when WAIT failed (the
 * server is a replica now), or when the connection closed meanwhile: ioredis may then have sent
 * the rest to another server, after a failover.
 *
 * On a Cluster, a step whose every write was refused with MOVED or ASK (the slot moved: a master
 * failed over) ran nowhere; ioredis does not follow the redirection itself because WAIT, which
 * has no key, ran on the node that refused them. The step is sent again, up to
 * {@link REDIRECTED_RETRIES} times, once the client has reloaded the slot map.
 * @throws the first error of the step's own commands, as a single call would.
 */
export async function execConfirmed(
  redis: Redis,
  markKey: string,
  queue: (pipeline: ChainableCommander) => void,
): Promise<ConfirmedReplies> {
  const state = tracked.get(redis);
  if (!state) throw new Error('execConfirmed on a connection without a wait policy');
  const { replicas, timeoutMs } = state.policy;
  const closesBefore = state.closes;
  let own = 0;
  const send = async (): Promise<[error: Error | null, result: unknown][]> => {
    const pipeline = redis.pipeline();
    queue(pipeline);
    own = pipeline.length;
    pipeline.set(markKey, '1').wait(replicas, timeoutMs);
    const results = await pipeline.exec();
    if (!results) throw new Error('pipeline aborted');
    return results;
  };
  let results = await send();
  const cluster = clusterOf(redis);
  for (let retry = 1; cluster && retry <= REDIRECTED_RETRIES && redirected(results.slice(0, own + 1)); retry++) {
    await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
    await sleep(REDIRECTED_RETRY_MS * retry);
    results = await send();
  }
  const replies: unknown[] = [];
  for (const [err, reply] of results.slice(0, own)) {
    if (err) throw err;
    replies.push(reply);
  }
  const [markError] = results[own] ?? [new Error('no reply to the wait mark')];
  const [waitError, waitReply] = results[own + 1] ?? [new Error('no reply to WAIT')];
  const reconnected = state.closes !== closesBefore;
  const confirmed = markError || waitError || reconnected ? 0 : Number(waitReply);
  const unconfirmed =
    confirmed >= replicas
      ? undefined
      : new ReplicasUnavailableError(
          replicas,
          confirmed,
          timeoutMs,
          markError ?? waitError ?? (reconnected ? new Error('reconnected during the step') : undefined),
        );
  return { replies, unconfirmed };
}

/**
 * Runs one script: on a connection with a wait policy, confirmed by WAIT (see
 * {@link execConfirmed}); otherwise exactly as {@link runScript}, without any extra command.
 */
export async function runScriptConfirmed(
  redis: ReseqRedis,
  markKey: string,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<{ reply: unknown; unconfirmed: ReplicasUnavailableError | undefined }> {
  if (!tracked.has(redis)) return { reply: await runScript(redis, name, keys, args), unconfirmed: undefined };
  const { replies, unconfirmed } = await execConfirmed(redis, markKey, (pipeline) => {
    queueScriptSource(pipeline, name, keys, args);
  });
  return { reply: replies[0], unconfirmed };
}

/**
 * {@link runScriptConfirmed} for steps that must not count unless confirmed.
 * @throws {ReplicasUnavailableError} when the step is unconfirmed (its writes are idempotent:
 *   the caller retries the same step).
 */
export async function runConfirmedScript(
  redis: ReseqRedis,
  markKey: string,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const { reply, unconfirmed } = await runScriptConfirmed(redis, markKey, name, keys, args);
  if (unconfirmed) throw unconfirmed;
  return reply;
}
