/**
 * The command line of `reseq`: which command, its destination and sequence, `--from` (replay),
 * `--to` (shards migrate) and `--json`.
 * Pure: no I/O, so every accepted and refused form is unit-tested.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** Usage text, printed by `reseq --help`. */
export const USAGE = `usage: pnpm reseq <command> [--json]

commands:
  status                              per destination: assigned, delivered, dead letters, blocked, ...
  dlq list [<destination>]            the dead letters (of one destination)
  dlq show <destination> <sequence>   one dead letter, with its payload
  dlq retry <destination> <sequence>  transform (or deliver) it again, in its own place
  dlq skip <destination> <sequence>   give it up: the destination's order moves past it
  destination pause <destination>     finish the delivery in flight, then send nothing more
  destination resume <destination>    deliver again, in order, what waited
  replay <destination> --from <sequence>
                                      deliver again, in order, from the retained history:
                                      <sequence> up to the delivered position, then carry on
  inspect                             the raw streams, groups, pending entries and hashes,
                                      with the redis-cli command that shows each
  shards                              the shard count (RESEQ_SHARDS), each shard's hash tag,
                                      slot and destinations
  shards migrate --to <count>         move a drained pipeline, all apps stopped, to another
                                      shard count (then start the apps with RESEQ_SHARDS=<count>)

options:
  --json            print JSON instead of text
  --from <sequence> replay: the first sequence to deliver again
  --to <count>      shards migrate: the new shard count, 1 to 1024
  -h, --help        print this help

environment: REDIS_URL, RESEQ_PREFIX, RESEQ_CONFIG (and the rest), as for the apps.
exit status: 0 done; 2 bad arguments; 3 unknown destination; 4 no such dead letter;
5 already passed; 6 Redis unreachable; 7 invalid configuration; 8 replay refused;
9 shard migration refused; 1 anything else.`;

/** A parsed command line. */
export type Command =
  | { name: 'help' }
  | { name: 'status'; json: boolean }
  | { name: 'inspect'; json: boolean }
  | { name: 'destination-pause' | 'destination-resume'; json: boolean; destination: string }
  | { name: 'dlq-list'; json: boolean; destination: string | undefined }
  | { name: 'dlq-show' | 'dlq-retry' | 'dlq-skip'; json: boolean; destination: string; sequence: number }
  | { name: 'replay'; json: boolean; destination: string; from: number }
  | { name: 'shards'; json: boolean }
  | { name: 'shards-migrate'; json: boolean; to: number };

function parseSequence(text: string): number {
  const sequence = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(sequence) || sequence < 1) {
    throw new UsageError(`"${text}" is not a sequence (a whole number from 1)`);
  }
  return sequence;
}

function expectCount(positionals: readonly string[], count: number, form: string): void {
  if (positionals.length < count) throw new UsageError(`missing arguments: ${form}`);
  if (positionals.length > count) {
    throw new UsageError(`unexpected argument "${positionals[count]}": ${form}`);
  }
}

/**
 * Parses `argv` (without node and the script).
 * @throws {UsageError} for an unknown command or option, or missing or malformed arguments.
 */
export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        from: { type: 'string' },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split('\n')[0]! : String(err));
  }
  const { values, positionals } = parsed;
  const json = values.json === true;
  const [command, sub, ...rest] = positionals;
  if (values.help === true || command === 'help') return { name: 'help' };
  if (values.from !== undefined && command !== 'replay') {
    throw new UsageError('--from applies only to replay <destination> --from <sequence>');
  }
  if (values.to !== undefined && !(command === 'shards' && sub === 'migrate')) {
    throw new UsageError('--to applies only to shards migrate --to <count>');
  }
  switch (command) {
    case undefined:
      throw new UsageError('no command given');
    case 'status':
      expectCount(positionals.slice(1), 0, 'status [--json]');
      return { name: 'status', json };
    case 'dlq':
      switch (sub) {
        case 'list':
          if (rest.length > 1) throw new UsageError(`unexpected argument "${rest[1]}": dlq list [<destination>]`);
          return { name: 'dlq-list', json, destination: rest[0] };
        case 'show':
        case 'retry':
        case 'skip': {
          expectCount(rest, 2, `dlq ${sub} <destination> <sequence>`);
          return { name: `dlq-${sub}`, json, destination: rest[0]!, sequence: parseSequence(rest[1]!) };
        }
        case undefined:
          throw new UsageError('dlq needs a subcommand: list, show, retry or skip');
        default:
          throw new UsageError(`unknown dlq subcommand "${sub}" (list, show, retry or skip)`);
      }
    case 'inspect':
      expectCount(positionals.slice(1), 0, 'inspect [--json]');
      return { name: 'inspect', json };
    case 'destination':
      switch (sub) {
        case 'pause':
        case 'resume':
          expectCount(rest, 1, `destination ${sub} <destination>`);
          return { name: `destination-${sub}`, json, destination: rest[0]! };
        case undefined:
          throw new UsageError('destination needs a subcommand: pause or resume');
        default:
          throw new UsageError(`unknown destination subcommand "${sub}" (pause or resume)`);
      }
    case 'replay': {
      const form = 'replay <destination> --from <sequence>';
      expectCount(positionals.slice(1), 1, form);
      if (values.from === undefined) throw new UsageError(`missing --from <sequence>: ${form}`);
      return { name: 'replay', json, destination: sub!, from: parseSequence(values.from) };
    }
    case 'shards': {
      if (sub === undefined) return { name: 'shards', json };
      const form = 'shards migrate --to <count>';
      if (sub !== 'migrate') throw new UsageError(`unknown shards subcommand "${sub}": ${form}`);
      expectCount(rest, 0, form);
      if (values.to === undefined) throw new UsageError(`missing --to <count>: ${form}`);
      const to = Number(values.to);
      if (!/^\d+$/.test(values.to) || to < 1 || to > 1024) {
        throw new UsageError(`"${values.to}" is not a shard count (a whole number from 1 to 1024)`);
      }
      return { name: 'shards-migrate', json, to };
    }
    default:
      throw new UsageError(`unknown command "${command}" (status, dlq, destination, replay, inspect or shards)`);
  }
}
