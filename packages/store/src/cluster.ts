/**
 * Redis Cluster connections (`REDIS_CLUSTER_NODES`): an ioredis `Cluster` seeded with the given
 * nodes (it discovers the rest and follows MOVED/ASK), carrying REDIS_URL's user, password and
 * TLS to every node, and behaving like a single-node connection of the same mode while a master
 * fails over.
 *
 * The stores are typed against `Redis`; a `Cluster` has every command they use with the same
 * signature (both are ioredis `Commander`s), so `createRedis` hands it out under that type. What
 * differs, and is handled here and in replication.ts: a Cluster emits `close` only when it
 * closes whole (its node connections close one by one), a command without a key (INFO, PING,
 * WAIT) goes to a random master unless it rides in a pipeline whose keys name a slot, and
 * ioredis sends a redirected pipeline again only where the rest of it only read.
 *
 * Resharding (a slot moved to another master while the apps run): ioredis follows ASK (ASKING,
 * then the command, on the target), TRYAGAIN (the command again after `retryDelayOnTryAgain`) and
 * MOVED for single commands and scripts, replication.ts for confirmed steps, and the server
 * refuses a transaction whose keys are split between the two nodes (TRYAGAIN), so reads of
 * several keys go in transactions. One promise of ioredis's ASK handling gets a handler here.
 */
import { urlDatabase, type HostPort } from '@reseq/config';
import { Cluster, type Callback, type ClusterOptions, type Redis } from 'ioredis';

/** The Cluster client `redis` really is (createRedis hands it out typed as Redis), or undefined. */
export function clusterOf(redis: Redis | Cluster): Cluster | undefined {
  return (redis as { isCluster?: unknown }).isCluster === true ? (redis as Cluster) : undefined;
}

/**
 * The connections to the masters a Cluster client knows (one per master; created lazily, so
 * some may not be connected yet). A plain connection is its own only master.
 */
export function masterConnections(redis: Redis | Cluster): Redis[] {
  return clusterOf(redis)?.nodes('master') ?? [redis as Redis];
}

/** Options of {@link createClusterClient}. */
export interface ClusterClientOptions {
  /** `redis://` or `rediss://`: its user, password and TLS apply to every node; host and port are not used. */
  url: string;
  /** Seed nodes; the others are discovered from them. */
  nodes: readonly HostPort[];
  /** CLIENT SETNAME of every node connection. */
  connectionName: string;
  /** As `createRedis`'s mode: fail at once while a slot has no reachable master, or wait for one. */
  failFast: boolean;
}

/**
 * In `wait` mode a command meeting a closed connection or CLUSTERDOWN (a master failing over) is
 * sent again every {@link WAIT_RETRY_MS} while slots are refreshed, each try counting as a
 * redirection (two where a MOVED points at the dead master first): this many span 15 to 30 s,
 * about what a failover takes with the default `cluster-node-timeout` (15 s). Past it the command
 * fails and the app's own retry loop takes over.
 */
const WAIT_MAX_REDIRECTIONS = 150;
const WAIT_RETRY_MS = 200;

/**
 * A Cluster client, not yet connected (`lazyConnect`: `connectRedis` connects it).
 * @throws Error when the URL names a database other than 0 (a Cluster has database 0 only).
 */
export function createClusterClient(options: ClusterClientOptions): Cluster {
  const db = urlDatabase(options.url);
  if (db !== 0) throw new Error(`a Redis Cluster has database 0 only; the URL names database ${db}`);
  const parsed = new URL(options.url);
  const tls = parsed.protocol === 'rediss:';
  const failFast = options.failFast;
  const clusterOptions: ClusterOptions = {
    // Writes and reads alike go to the slot's master: reads from a replica could miss an
    // acknowledged write, and the blocking reads (XREAD/XREADGROUP BLOCK) must see every entry.
    scaleReads: 'master',
    lazyConnect: true,
    // As a single connection: fail-fast refuses commands while the cluster is unreachable, wait
    // queues them until it is back.
    enableOfflineQueue: !failFast,
    // Reconnect to the cluster forever, backing off to 2 s, like a single connection.
    clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // A master that died: fail-fast lets the caller answer 503 at once (the client retries with
    // its id); wait re-sends until a replica has taken over (slots are refreshed meanwhile).
    retryDelayOnFailover: failFast ? 0 : WAIT_RETRY_MS,
    retryDelayOnClusterDown: failFast ? 0 : WAIT_RETRY_MS,
    retryDelayOnTryAgain: 100,
    maxRedirections: failFast ? 16 : WAIT_MAX_REDIRECTIONS,
    redisOptions: {
      connectionName: options.connectionName,
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
      ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
      ...(tls ? { tls: {} } : {}),
      // Node connections do not reconnect by themselves (ioredis's default in a cluster): the
      // Cluster finds the slot's master again and re-sends or fails the command, as set above.
    },
  };
  const cluster = new Cluster(
    options.nodes.map(({ host, port }) => ({ host, port })),
    clusterOptions,
  );
  cluster.on('+node', handleAskingRejections);
  return cluster;
}

/**
 * ioredis follows an ASK by sending ASKING, then the command, to the target, and drops the
 * promise of the ASKING (cluster/index.js, `tryConnection`). Where the target is a master that
 * holds no slot yet (resharding onto a master just added), the next reload of the slot map closes
 * the connection ioredis opened to it ("does not hold any slot"), an ASKING still waiting for its
 * reply rejects unhandled, and the app exits. Every node connection's ASKING gets a handler here;
 * the command after it fails with the closed connection and is sent again as usual.
 */
function handleAskingRejections(node: Redis): void {
  const asking = node.asking.bind(node);
  // Rest arguments: an explicit `undefined` callback would go out as an argument of ASKING.
  node.asking = (...args: [callback?: Callback<'OK'>]) => {
    const reply = asking(...args);
    reply.catch(() => undefined);
    return reply;
  };
}
