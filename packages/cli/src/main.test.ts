import { expect, it } from 'vitest';
import { recordingIo } from './cli.test-support.js';
import { main, VERSION } from './main.js';

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

it('--version and --help exit 0 and list the subcommands', async () => {
  expect(await run('--version')).toMatchObject({ code: 0, out: `${VERSION}\n` });
  const help = await run('--help');
  expect(help.code).toBe(0);
  // Each subcommand as an entry of the Commands list (a bare substring would also match
  // descriptions: 'vm' is in 'supervised VMs', 'snapshot' in `qmpkit snapshot`).
  const listed = [...help.out.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]);
  expect(listed).toEqual(
    expect.arrayContaining(['demo', 'shell', 'exec', 'events', 'schema', 'vm', 'snapshot']),
  );
});

it('usage errors exit 2: unknown subcommand (with a suggestion), missing operand, bad address', async () => {
  const unknown = await run('exce');
  expect(unknown.code).toBe(2);
  expect(unknown.err).toMatch(/Did you mean exec\?/);
  expect((await run('exec', 'unix:/x')).code).toBe(2);
  const address = await run('exec', 'nonsense', 'query-status');
  expect(address.code).toBe(2);
  expect(address.err).toMatch(/qmpkit: QMP address 'nonsense': expected unix:\/path/);
  const option = await run('events', 'unix:/x', '--count', 'zero');
  expect(option.code).toBe(2);
  expect(option.err).toMatch(/argument 'zero' is invalid\. --count must be a positive integer/);
});

it('an unreachable address exits 2 with the reason', async () => {
  const refused = await run('exec', 'tcp:127.0.0.1:1', 'query-status');
  expect(refused.code).toBe(2);
  expect(refused.err).toMatch(
    /cannot connect to tcp:127\.0\.0\.1:1: nothing is listening there \(ECONNREFUSED\)/,
  );
});
