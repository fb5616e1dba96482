/**
 * Sharding the key space (`RESEQ_SHARDS`): every destination belongs to one shard, and every key
 * of a shard shares one hash tag, so each script and transaction touches one Redis Cluster slot
 * while the shards spread over the masters. With one shard (the default) every key is under
 * `{<prefix>}`, exactly the single-Redis layout. docs/data-model.md#shards describes the layout.
 */
import { KeySchema } from './keys.js';

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

/** Most tags tried per shard when placing it on the slot range (never reached in practice). */
const MAX_TAG_TRIES = 1_000_000;

const CRC16_TABLE = ((): Uint16Array => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

const utf8 = new TextEncoder();

/**
 * The cluster slot of a key, as `CLUSTER KEYSLOT` computes it: of the part between the first `{`
 * and the next `}` where that part is not empty (the hash tag), else of the whole key.
 */
export function keySlot(key: string): number {
  const bytes = utf8.encode(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOTS;
  }
  return crc16(bytes) % CLUSTER_SLOTS;
}

/**
 * A destination's stable shard hash: FNV-1a (32 bits) of its name's UTF-8 bytes, then
 * MurmurHash3's finalizer, so that the low bits a modulo keeps depend on every byte. Never
 * change it: a pipeline's destinations would move to other shards' keys.
 */
export function destinationHash(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(name)) hash = Math.imul(hash ^ byte, 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * The hash tag of shard `shard` of `count`. One shard: `{<prefix>}`. Several: `{<prefix>|<shard>.<k>}`,
 * with the smallest `k` that puts the tag's slot within a quarter of a shard's width of the
 * middle of the shard's own equal part of the slot range, so shard n of N lands in part n of N.
 * A cluster made by `redis-cli --cluster create` gives each of M masters one contiguous equal
 * part of the range, so with N a multiple of M every master holds exactly N / M shards.
 */
export function shardTag(prefix: string, shard: number, count: number): string {
  if (count === 1) return `{${prefix}}`;
  const width = CLUSTER_SLOTS / count;
  const middle = (shard + 0.5) * width;
  const reach = width / 4;
  for (let k = 0; k < MAX_TAG_TRIES; k++) {
    const content = `${prefix}|${shard}.${k}`;
    if (Math.abs((crc16(utf8.encode(content)) % CLUSTER_SLOTS) - middle) <= reach) return `{${content}}`;
  }
  throw new Error(`no hash tag found for shard ${shard} of ${count}`);
}

/**
 * The shards of one pipeline: which shard each destination belongs to, and the key schema of
 * each shard. `home` holds the pipeline-wide keys (`senders`, `source-lease:*`, `source-fence`,
 * `meta`) under `{<prefix>}`; with one shard it is that shard's schema too.
 */
export class Shards {
  /** The pipeline-wide keys, under `{<prefix>}`. */
  readonly home: KeySchema;
  readonly #schemas: (KeySchema | undefined)[];
  readonly #shardOf = new Map<string, number>();

  /**
   * @param count shards, 1 to 1024 (`RESEQ_SHARDS`; default 1: the single-Redis layout).
   * @throws RangeError when `count` is not an integer in 1..1024.
   */
  constructor(
    readonly prefix: string,
    readonly count = 1,
  ) {
    if (!Number.isInteger(count) || count < 1 || count > 1024)
      throw new RangeError(`shard count must be an integer in 1..1024, not ${count}`);
    this.home = new KeySchema(prefix);
    this.#schemas = count === 1 ? [this.home] : new Array<KeySchema | undefined>(count);
  }

  /** The shard of `destination`: {@link destinationHash} of its name modulo the shard count. */
  shardOf(destination: string): number {
    if (this.count === 1) return 0;
    let shard = this.#shardOf.get(destination);
    if (shard === undefined) {
      shard = destinationHash(destination) % this.count;
      this.#shardOf.set(destination, shard);
    }
    return shard;
  }

  /** The key schema of shard `shard` (its tag is found once, on first use). */
  keys(shard: number): KeySchema {
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.count) throw new RangeError(`no shard ${shard}`);
    let schema = this.#schemas[shard];
    if (!schema) {
      schema = new KeySchema(this.prefix, shardTag(this.prefix, shard, this.count), shard);
      this.#schemas[shard] = schema;
    }
    return schema;
  }

  /** The key schema of the shard that `destination` belongs to. */
  forDestination(destination: string): KeySchema {
    return this.keys(this.shardOf(destination));
  }

  /** Every shard's key schema, shard 0 first. */
  get all(): KeySchema[] {
    return Array.from({ length: this.count }, (_, shard) => this.keys(shard));
  }

  /** Items grouped by their destination's shard, in order of first appearance (order kept within). */
  group<T>(items: Iterable<T>, destinationOf: (item: T) => string): Map<KeySchema, T[]> {
    const groups = new Map<number, T[]>();
    for (const item of items) {
      const shard = this.shardOf(destinationOf(item));
      const group = groups.get(shard);
      if (group) group.push(item);
      else groups.set(shard, [item]);
    }
    return new Map([...groups].map(([shard, group]) => [this.keys(shard), group]));
  }

  /**
   * Runs `run` once per shard with the items whose destination is on it (in parallel), and
   * returns its results in the items' order. With one shard, `run` is called once with every
   * item, exactly as without sharding.
   * @throws the first failure of any shard's call.
   */
  async perShard<T, R>(
    items: readonly T[],
    destinationOf: (item: T) => string,
    run: (keys: KeySchema, items: T[]) => Promise<R[]>,
  ): Promise<R[]> {
    if (this.count === 1) return run(this.home, [...items]);
    const indexed = this.group(
      items.map((item, index) => ({ item, index })),
      ({ item }) => destinationOf(item),
    );
    const out = new Array<R>(items.length);
    await Promise.all(
      [...indexed].map(async ([keys, group]) => {
        const results = await run(
          keys,
          group.map(({ item }) => item),
        );
        group.forEach(({ index }, i) => (out[index] = results[i]!));
      }),
    );
    return out;
  }
}
