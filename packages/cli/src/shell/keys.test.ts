/**
 * Two Tab presses in one read of the terminal (issue #12 §4): the shell completes, it does
 * not insert a literal TAB. Driven through `main` with a terminal-like stdin/stdout against
 * the fake QMP server; the keys arrive in ONE chunk by construction.
 */
import { PassThrough } from 'node:stream';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { splitTabs } from './keys.js';

let fake: FakeQmp;
beforeAll(async () => {
  fake = await createFakeQmp({ listen: { unix: true }, storage: 'memory', paused: true });
});
afterAll(async () => {
  await fake?.close();
});

it('splitTabs puts every TAB in a piece of its own', () => {
  expect(splitTabs('query-versio\t\t')).toEqual(['query-versio', '\t', '\t']);
  expect(splitTabs('a\tb')).toEqual(['a', '\t', 'b']);
  expect(splitTabs('plain')).toEqual(['plain']);
});

it('completes on two TABs that arrive in one write, then runs the completed command', async () => {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin });
  const base = recordingIo();
  const stdout = Object.assign(base.stdout as PassThrough, { isTTY: true, columns: 120 });
  const io = { ...base, stdin, stdout };
  const before = fake.received('query-version').length;
  const done = main(['shell', '--no-history', fake.address], io);
  // Wait for the banner: the shell is reading its terminal.
  await new Promise<void>((resolve) => {
    const check = () => (base.out().includes('Tab completes') ? resolve() : setTimeout(check, 10));
    check();
  });
  stdin.write('query-versio\t\t\r');
  // The command ran (the fake saw it) before the terminal closes.
  await new Promise<void>((resolve) => {
    const check = () =>
      fake.received('query-version').length > before ? resolve() : setTimeout(check, 10);
    check();
  });
  stdin.end();
  const code = await done;
  expect(base.out()).not.toContain("has no command 'query-versio");
  expect(code).toBe(0);
});
