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
 * the step's writes, on the same connection, as WAIT requires. ioredis does not follow a
 * redirection of such a pipeline (WAIT ran, on the node that refused the writes), so
 * {@link execConfirmed} does, for a step that ran nowhere: after MOVED (the slot has a new
 * master) through the reloaded slot map; after ASK (the slot is being moved and the step's keys
 * already are on the target) on the target's connection, with ASKING before each keyed command;
 * after TRYAGAIN (its keys are split between the two nodes, or some exist on neither) again
 * after a pause.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
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

/** How often a step refused whole with MOVED is sent again on a Cluster, and the pause before each. */
const MOVED_RETRIES = 3;
const MOVED_RETRY_MS = 100;
/**
 * The pause before a step refused with TRYAGAIN is sent again, where the Cluster client sets none
 * (`retryDelayOnTryAgain`), and how many ASK and TRYAGAIN refusals it takes in all (where it sets
 * no `maxRedirections`): as many as a single command meets before ioredis gives up.
 */
const TRYAGAIN_RETRY_MS = 100;
const MAX_REDIRECTIONS = 16;

/** One reply of a pipeline. */
type Reply = [error: Error | null, result: unknown];

/** How a Cluster refused a step that ran nowhere. */
type Refusal =
  /** The slot has another master: every keyed command, the mark included, was refused. */
  | { kind: 'moved' }
  /** The slot is being moved and every key of the step, the mark's included, is on the target now. */
  | { kind: 'ask'; address: string }
  /** Anything else that ran nothing: TRYAGAIN, or an ASK while the mark is still on the source. */
  | { kind: 'tryagain' };

const REFUSAL = /^(MOVED|ASK|TRYAGAIN)(?: \d+ (\S+))?/;

/**
 * How the step was refused, or undefined where any of its own commands ran (or failed for
 * another reason). ASK is followed only where the mark was refused with it too: written on the
 * target while the source still has it, the mark would exist twice and its MIGRATE would fail.
 */
function refusalOf(own: readonly Reply[], mark: Reply): Refusal | undefined {
  const refusals = own.map(([err]) => (err ? REFUSAL.exec(err.message) : null));
  if (refusals.length === 0 || refusals.some((r) => r === null)) return undefined;
  const markRefusal = mark[0] ? REFUSAL.exec(mark[0].message) : null;
  const all = [...refusals, markRefusal];
  if (all.every((r) => r?.[1] === 'MOVED')) return { kind: 'moved' };
  const address = refusals[0]![2];
  if (address && all.every((r) => r?.[1] === 'ASK' && r[2] === address)) return { kind: 'ask', address };
  return { kind: 'tryagain' };
}

/**
 * ioredis's pool of node connections. Not public API, but what ioredis's own ASK handling uses to
 * reach a target that serves no slot yet (a master just added), which the slot map does not list.
 */
interface NodePool {
  findOrCreate(node: { host: string; port: number }): Redis;
}

/**
 * The Cluster's connection to the master at `address` (`host:port`, as ASK names it), opened
 * where the client has none yet; undefined where it cannot be had.
 */
function nodeAt(cluster: Cluster, address: string): Redis | undefined {
  const known = cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === address);
  if (known) return known;
  const pool = (cluster as unknown as { connectionPool?: Partial<NodePool> }).connectionPool;
  const colon = address.lastIndexOf(':');
  if (typeof pool?.findOrCreate !== 'function' || colon < 0) return undefined;
  return pool.findOrCreate({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
}

function refreshSlots(cluster: Cluster): Promise<void> {
  return new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
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

/** Queues one command of a confirmed step on a pipeline (see {@link execConfirmed}). */
export type StepCommand = (pipeline: ChainableCommander) => void;

/**
 * Queues `commands` on `pipeline`, each after an ASKING where `asking` (ASKING covers the next
 * command only); returns the positions of their replies.
 */
function queueStep(pipeline: ChainableCommander, commands: readonly StepCommand[], asking: boolean): number[] {
  const positions: number[] = [];
  for (const add of commands) {
    if (asking) pipeline.asking();
    const position = pipeline.length;
    add(pipeline);
    if (pipeline.length !== position + 1) throw new Error('a step command must queue exactly one command');
    positions.push(position);
  }
  return positions;
}

/** What a confirmed step answered. */
export interface ConfirmedReplies {
  /** The replies of the step's own commands, in order. */
  replies: unknown[];
  /** Set when the step is not confirmed; its writes may or may not survive a failover. */
  unconfirmed: ReplicasUnavailableError | undefined;
}

/**
 * Runs the step's `commands`, then `SET <markKey>` and `WAIT`, in one round trip. The step
 * is unconfirmed when fewer replicas than the policy's answered in time, when WAIT failed (the
 * server is a replica now), or when the connection closed meanwhile: ioredis may then have sent
 * the rest to another server, after a failover.
 *
 * On a Cluster, a step refused whole ran nowhere (ioredis does not follow the refusal itself:
 * WAIT, which has no key, ran on the node that refused the rest), and is sent again:
 * - MOVED for every write (a master failed over, or a slot migration ended): once the client has
 *   reloaded the slot map, up to {@link MOVED_RETRIES} times;
 * - ASK for every write (a slot migration moved the step's keys already): to the target, each
 *   keyed command after an ASKING (which covers the next command only), and WAIT there;
 * - TRYAGAIN (a slot migration has moved some of the step's keys, or a key it names exists on
 *   neither node) or an ASK for some writes only: after `retryDelayOnTryAgain`, by the slot map.
 * ASK and TRYAGAIN count as redirections, up to the client's `maxRedirections` in all.
 * @param commands each queues one command of the step, on the step's slot.
 * @throws the first error of the step's own commands, as a single call would.
 */
export async function execConfirmed(
  redis: Redis,
  markKey: string,
  commands: readonly StepCommand[],
): Promise<ConfirmedReplies> {
  const state = tracked.get(redis);
  if (!state) throw new Error('execConfirmed on a connection without a wait policy');
  const { replicas, timeoutMs } = state.policy;
  const closesBefore = state.closes;
  const own = commands.length;
  /** Sends the step by the slot map, or to `node` with ASKING; the replies of its commands, the mark and WAIT. */
  const send = async (node?: Redis): Promise<Reply[]> => {
    const pipeline = (node ?? redis).pipeline();
    const positions = queueStep(pipeline, [...commands, (p) => p.set(markKey, '1')], node !== undefined);
    positions.push(pipeline.length);
    pipeline.wait(replicas, timeoutMs);
    const results = await pipeline.exec();
    if (!results) throw new Error('pipeline aborted');
    return positions.map((i) => results[i] ?? [new Error('no reply'), null]);
  };
  let results = await send();
  const cluster = clusterOf(redis);
  let moved = 0;
  let redirections = 0;
  const maxRedirections = cluster?.options.maxRedirections ?? MAX_REDIRECTIONS;
  for (;;) {
    const refusal = cluster && refusalOf(results.slice(0, own), results[own]!);
    if (!refusal) break;
    let target: Redis | undefined;
    if (refusal.kind === 'moved') {
      if (++moved > MOVED_RETRIES) break;
      await refreshSlots(cluster);
      await sleep(MOVED_RETRY_MS * moved);
    } else {
      if (++redirections >= maxRedirections) break;
      target = refusal.kind === 'ask' ? nodeAt(cluster, refusal.address) : undefined;
      if (!target) await sleep(cluster.options.retryDelayOnTryAgain || TRYAGAIN_RETRY_MS);
    }
    results = await send(target);
  }
  const replies: unknown[] = [];
  for (const [err, reply] of results.slice(0, own)) {
    if (err) throw err;
    replies.push(reply);
  }
  const [markError] = results[own]!;
  const [waitError, waitReply] = results[own + 1]!;
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
  const { replies, unconfirmed } = await execConfirmed(redis, markKey, [
    (pipeline) => queueScriptSource(pipeline, name, keys, args),
  ]);
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
