import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { parseCommand } from './parse-args.js';

describe('parseCommand', () => {
  it('reads every command of the contract, with and without --json', () => {
    expect(parseCommand(['status'])).toEqual({ name: 'status', json: false });
    expect(parseCommand(['status', '--json'])).toEqual({ name: 'status', json: true });
    expect(parseCommand(['--json', 'status'])).toEqual({ name: 'status', json: true });
    expect(parseCommand(['dlq', 'list'])).toEqual({ name: 'dlq-list', json: false, destination: undefined });
    expect(parseCommand(['dlq', 'list', '--json'])).toEqual({ name: 'dlq-list', json: true, destination: undefined });
    expect(parseCommand(['dlq', 'list', 'billing'])).toEqual({ name: 'dlq-list', json: false, destination: 'billing' });
    expect(parseCommand(['dlq', 'retry', 'billing', '17'])).toEqual({
      name: 'dlq-retry',
      json: false,
      destination: 'billing',
      sequence: 17,
    });
    expect(parseCommand(['dlq', 'skip', 'ledger', '3', '--json'])).toEqual({
      name: 'dlq-skip',
      json: true,
      destination: 'ledger',
      sequence: 3,
    });
    expect(parseCommand(['dlq', 'show', 'billing', '1'])).toMatchObject({ name: 'dlq-show', sequence: 1 });
  });

  it('reads destination pause|resume and inspect', () => {
    expect(parseCommand(['destination', 'pause', 'billing'])).toEqual({
      name: 'destination-pause',
      json: false,
      destination: 'billing',
    });
    expect(parseCommand(['destination', 'resume', 'billing', '--json'])).toEqual({
      name: 'destination-resume',
      json: true,
      destination: 'billing',
    });
    expect(parseCommand(['inspect', '--json'])).toEqual({ name: 'inspect', json: true });
  });

  it('reads replay <destination> --from <sequence>, the option anywhere on the line', () => {
    expect(parseCommand(['replay', 'billing', '--from', '3'])).toEqual({
      name: 'replay',
      json: false,
      destination: 'billing',
      from: 3,
    });
    expect(parseCommand(['replay', '--from=12', 'billing', '--json'])).toEqual({
      name: 'replay',
      json: true,
      destination: 'billing',
      from: 12,
    });
    expect(parseCommand(['--from', '1', 'replay', 'ledger'])).toMatchObject({ destination: 'ledger', from: 1 });
  });

  it('reads shards and shards migrate --to <count>', () => {
    expect(parseCommand(['shards'])).toEqual({ name: 'shards', json: false });
    expect(parseCommand(['shards', '--json'])).toEqual({ name: 'shards', json: true });
    expect(parseCommand(['shards', 'migrate', '--to', '3'])).toEqual({ name: 'shards-migrate', json: false, to: 3 });
    expect(parseCommand(['--to=1', 'shards', 'migrate', '--json'])).toEqual({
      name: 'shards-migrate',
      json: true,
      to: 1,
    });
  });

  it('answers help for --help, -h and help, whatever else is given', () => {
    for (const argv of [['--help'], ['-h'], ['help'], ['dlq', 'retry', '--help'], ['status', '-h']]) {
      expect(parseCommand(argv)).toEqual({ name: 'help' });
    }
  });

  it.each([
    [[], /no command given/],
    [['stats'], /unknown command "stats"/],
    [['status', 'billing'], /unexpected argument "billing"/],
    [['status', '--yaml'], /Unknown option '--yaml'/],
    [['status', '--json=1'], /--json/],
    [['dlq'], /dlq needs a subcommand/],
    [['dlq', 'purge'], /unknown dlq subcommand "purge"/],
    [['dlq', 'list', 'a', 'b'], /unexpected argument "b"/],
    [['dlq', 'retry'], /missing arguments: dlq retry <destination> <sequence>/],
    [['dlq', 'skip', 'billing'], /missing arguments: dlq skip/],
    [['dlq', 'skip', 'billing', '3', '4'], /unexpected argument "4"/],
    [['dlq', 'retry', 'billing', '0'], /"0" is not a sequence/],
    [['dlq', 'retry', 'billing', '-3'], /Unknown option '-3'|not a sequence/],
    [['dlq', 'retry', 'billing', '2.5'], /"2.5" is not a sequence/],
    [['dlq', 'retry', 'billing', '1e3'], /"1e3" is not a sequence/],
    [['dlq', 'retry', 'billing', '99999999999999999999'], /is not a sequence/],
    [['destination'], /destination needs a subcommand/],
    [['destination', 'stop', 'billing'], /unknown destination subcommand "stop"/],
    [['destination', 'pause'], /missing arguments: destination pause <destination>/],
    [['destination', 'resume', 'a', 'b'], /unexpected argument "b"/],
    [['inspect', 'billing'], /unexpected argument "billing"/],
    [['replay'], /missing arguments: replay <destination> --from <sequence>/],
    [['replay', 'billing'], /missing --from <sequence>: replay <destination> --from <sequence>/],
    [['replay', 'billing', '3'], /unexpected argument "3": replay <destination> --from <sequence>/],
    [['replay', 'billing', '--from'], /--from/],
    [['replay', 'billing', '--from', 'x'], /"x" is not a sequence/],
    [['replay', 'billing', '--from', '0'], /"0" is not a sequence/],
    [['replay', 'billing', '--from', '1.5'], /"1.5" is not a sequence/],
    [['replay', 'billing', '--from', '-2'], /--from|not a sequence/],
    [['replay', 'a', 'b', '--from', '1'], /unexpected argument "b"/],
    [['status', '--from', '3'], /--from applies only to replay/],
    [['dlq', 'retry', 'billing', '3', '--from', '1'], /--from applies only to replay/],
    [['shards', 'split'], /unknown shards subcommand "split"/],
    [['shards', 'migrate'], /missing --to <count>: shards migrate --to <count>/],
    [['shards', 'migrate', '4'], /unexpected argument "4": shards migrate --to <count>/],
    [['shards', 'migrate', '--to', '0'], /"0" is not a shard count/],
    [['shards', 'migrate', '--to', '1025'], /"1025" is not a shard count/],
    [['shards', 'migrate', '--to', '2.5'], /"2.5" is not a shard count/],
    [['shards', '--to', '3'], /--to applies only to shards migrate/],
    [['status', '--to', '3'], /--to applies only to shards migrate/],
  ])('refuses %j as a usage error', (argv, message) => {
    let thrown: unknown;
    try {
      parseCommand(argv);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    expect((thrown as UsageError).code).toBe('CLI_USAGE');
    expect((thrown as UsageError).message).toMatch(message);
    expect((thrown as UsageError).message).not.toContain('\n');
  });
});
