/**
 * Configuration of every app, parsed once at boot from the environment and the RESEQ_CONFIG
 * file by one schema, with the defaults inside the schema, then frozen.
 */
export { loadConfig, parseConfig, ConfigError } from './load-config.js';
export {
  type ReseqConfig,
  type DestinationConfig,
  type HttpDestinationConfig,
  type TcpDestinationConfig,
  type SourceConfig,
  type BullmqSourceConfig,
  type KueSourceConfig,
  sourceId,
  type PostgresDestinationConfig,
  type EnvConfig,
  type FileConfig,
  type HostPort,
  DESTINATION_NAME_PATTERN,
  MESSAGE_ID_PATTERN,
  SOURCE_NAME_PATTERN,
  SQL_TABLE_PATTERN,
  urlDatabase,
} from './schema.js';
