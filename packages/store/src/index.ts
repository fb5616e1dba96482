/**
 * Everything reseq keeps in Redis: the key schema, the Lua scripts and the typed operations
 * each app performs, in the order a message meets them: ingest-store, worker-store,
 * sender-store; then operator-store, the CLI's. docs/data-model.md is the operator's view of
 * the same.
 */
export { KeySchema, WORKER_GROUP } from './keys.js';
export * from './shards.js';
export * from './shard-layout.js';
export * from './connect-pipeline.js';
export * from './shard-migration.js';
export {
  createRedis,
  connectRedis,
  isRedisReady,
  redisTarget,
  writesLeftProcess,
  type CreateRedisOptions,
  type RedisTarget,
} from './redis.js';
export { execConfirmed, waitPolicy, type ConfirmedReplies, type StepCommand, type WaitPolicy } from './replication.js';
export { SCRIPT_VERSION, SCRIPT_NAMES, commandName, type ReseqRedis, type ScriptName } from './scripts.js';
export * from './codec.js';
export * from './errors.js';
export * from './ingest-store.js';
export * from './source-store.js';
export * from './worker-store.js';
export * from './hedge-store.js';
export * from './sender-store.js';
export * from './operator-store.js';
export * from './history-store.js';
export * from './status-age.js';
export * from './inspect-store.js';
export * from './sharded-ingest.js';
export * from './sharded-reads.js';
