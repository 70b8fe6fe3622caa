/**
 * `qmpkit shell` in a pseudo-terminal (@lydell/node-pty) against a real QEMU: what a person at the
 * keyboard sees. Keys are written one chunk at a time: readline treats a multi-character
 * chunk as a paste and does not complete on a Tab inside it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type QmpClient } from '@qmpkit/transport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  PRELAUNCH_STATUS,
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  startQemu,
  type TestQemu,
} from '../qemu.test-support.js';

const BIN = path.join(import.meta.dirname, '../bin.ts');
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');

interface Terminal {
  /** Everything printed so far, ANSI sequences removed. */
  screen(): string;
  /** Waits until the output after `from` matches; returns the index after the match. */
  expect(pattern: RegExp | string, from?: number, timeout?: number): Promise<number>;
  type(text: string): Promise<void>;
  readonly exited: Promise<number>;
  mark(): number;
  /** SIGKILL the shell if it still runs (only this pty's child). */
  kill(): void;
}

const open = new Set<Terminal>();

async function openTerminal(args: string[], env: Record<string, string>): Promise<Terminal> {
  const pty = await import('@lydell/node-pty');
  const child = pty.spawn(
    process.execPath,
    ['--conditions=@qmpkit/source', '--import', 'tsx', BIN, ...args],
    {
      name: 'xterm',
      cols: 160,
      rows: 40,
      cwd: path.join(import.meta.dirname, '..', '..'),
      env: { ...process.env, NO_COLOR: '1', ...env } as Record<string, string>,
    },
  );
  let raw = '';
  child.onData((data) => {
    raw += data;
  });
  const exited = new Promise<number>((resolve) =>
    child.onExit(({ exitCode }) => resolve(exitCode)),
  );
  const screen = () => raw.replace(ANSI, '');
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const terminal: Terminal = {
    kill: () => {
      if (running) child.kill('SIGKILL');
    },
    screen,
    exited,
    mark: () => screen().length,
    async expect(pattern, from = 0, timeout = 15_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const text = screen().slice(from);
        const found =
          typeof pattern === 'string'
            ? { index: text.indexOf(pattern), length: pattern.length }
            : (() => {
                const m = pattern.exec(text);
                return { index: m ? m.index : -1, length: m ? m[0].length : 0 };
              })();
        if (found.index >= 0) return from + found.index + found.length;
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${String(pattern)}; output after mark:\n${text}`);
        await sleep(25);
      }
    },
    async type(text) {
      child.write(text);
      await sleep(120);
    },
  };
  open.add(terminal);
  return terminal;
}

// Every QEMU started here is killed after the file, even when a hook or test failed.
qemuSuite();

describe.skipIf(skipQemu)(`qmpkit shell in a pseudo-terminal, real QEMU${SKIP_REASON}`, () => {
  let qemu: TestQemu;
  let aux: QmpClient;
  beforeAll(async () => {
    qemu = await startQemu();
    aux = await connect(qemu.aux);
  });
  afterEach(async () => {
    for (const t of open) {
      t.kill();
      await t.exited;
    }
    open.clear();
  });
  afterAll(async () => {
    await aux?.close();
    await qemu?.stop();
  });

  it('completes, validates before sending, prints events above the prompt, keeps history, exits on Ctrl-D', async () => {
    const state = path.join(qemu.dir, 'state');
    const t = await openTerminal(['shell', qemu.address], { XDG_STATE_HOME: state });
    let at = await t.expect('(QEMU) ');

    // Command names: query-st is ambiguous on 7.2 (query-stats, query-stats-schemas, query-status):
    // Tab inserts the common prefix, a second Tab lists, u + Tab completes.
    await t.type('query-st');
    await t.type('\t');
    at = await t.expect('query-stat', at);
    await t.type('\t');
    at = await t.expect(/query-stats\s+query-stats-schemas\s+query-status/, at);
    await t.type('u');
    await t.type('\t');
    at = await t.expect('query-status ', at);
    await t.type('\r');
    at = await t.expect(PRELAUNCH_STATUS, at);

    // Argument keys, then enum and bool values.
    await t.type('blockdev-add dri');
    await t.type('\t');
    at = await t.expect('driver=', at);
    await t.type('nu');
    await t.type('\t');
    at = await t.expect('null-', at); // the line now reads driver=null-
    await t.type('co node-na');
    await t.type('\t');
    at = await t.expect('node-name=', at);
    await t.type('null0 read-z');
    await t.type('\t');
    at = await t.expect('read-zeroes=', at);
    await t.type('t');
    await t.type('\t');
    at = await t.expect('true ', at); // read-zeroes=true
    await t.type('\r');
    at = await t.expect(/\{\}\r?\n/, at);

    // Validation errors show the path and nothing is sent.
    await t.type('blockdev-add driver=null-co node-name=null1 size=big red-zeroes=on\r');
    at = await t.expect('error: blockdev-add: invalid arguments, nothing sent', at);
    at = await t.expect('$.size: expected an integer, got "big"', at);
    at = await t.expect("$.red-zeroes: unexpected member 'red-zeroes'", at);
    at = await t.expect('did you mean read-zeroes?', at);
    const nodes = (await aux.execute('query-named-block-nodes')).map((n) => n['node-name']);
    expect(nodes).toContain('null0');
    expect(nodes).not.toContain('null1');

    // Unknown commands get a suggestion and no crash.
    await t.type('query-stauts\r');
    at = await t.expect(
      "has no command 'query-stauts'; did you mean query-status or query-stats?",
      at,
    );

    // An event caused by this shell, and one arriving while a line is half typed: it is
    // printed above the prompt and the typed text survives.
    await t.type('cont\r');
    at = await t.expect('"event":"RESUME"', at);
    at = await t.expect('(QEMU) ', at);
    await t.type('query-vers');
    await aux.execute('stop');
    at = await t.expect('"event":"STOP"', at);
    at = await t.expect('(QEMU) query-vers', at);
    await t.type('ion\r');
    at = await t.expect(new RegExp(`"qemu":\\{[^}]*"major":${QEMU_BINARY.version?.major}`), at);

    // Ctrl-D quits with status 0; history was written.
    await t.type('\u0004');
    expect(await t.exited).toBe(0);
    const history = readFileSync(path.join(state, 'qmpkit', 'history'), 'utf8')
      .trim()
      .split('\n');
    expect(history[0]).toBe('query-status');
    expect(history).toContain('query-version');
  });

  it('--hmp sends lines through human-monitor-command and completes HMP names', async () => {
    const t = await openTerminal(['shell', '--hmp', '--no-history', qemu.address], {});
    let at = await t.expect('(HMP) ');
    await t.type('info statu');
    await t.type('\t');
    at = await t.expect('info status ', at);
    await t.type('\r');
    at = await t.expect(/VM status: (paused|running)/, at);
    await t.type('\u0004');
    expect(await t.exited).toBe(0);
  });
});
