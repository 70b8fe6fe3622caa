/**
 * Real QEMU for the CLI's tests: `-machine pc -m 16 -accel tcg -S`, QMP on two UNIX sockets
 * (one for the program under test, one for the test to drive and observe) in a private
 * 0700 temp dir, spawned with an argument array; `stop()` kills only this pid.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@qmpkit/transport';

export const QEMU = 'qemu-system-x86_64';
export const qemuMissing = spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status !== 0;
/** Skip only when QEMU is missing outside CI; in CI a missing QEMU fails. */
export const skipQemu = qemuMissing && process.env.CI !== 'true';
/** Appended to the names of real-QEMU suites, so a skip says why (never skipped in CI). */
export const SKIP_REASON = skipQemu ? ` (skipped: ${QEMU} is not installed)` : '';

export interface TestQemu {
  readonly dir: string;
  /** `unix:` address of the socket for the program under test. */
  readonly address: string;
  /** `unix:` address of the test's own socket. */
  readonly aux: string;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startQemu(): Promise<TestQemu> {
  const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-cli-'));
  if ((statSync(dir).mode & 0o777) !== 0o700) throw new Error(`${dir} is not private`);
  const main = path.join(dir, 'qmp.sock');
  const aux = path.join(dir, 'aux.sock');
  const args = [
    '-machine',
    'pc',
    '-m',
    '16',
    '-accel',
    'tcg',
    '-S',
    '-nodefaults',
    '-display',
    'none',
    '-qmp',
    `unix:${main},server=on,wait=off`,
    '-qmp',
    `unix:${aux},server=on,wait=off`,
  ];
  const child: ChildProcess = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-4096);
  });
  const deadline = Date.now() + 20_000;
  while (!(existsSync(main) && existsSync(aux))) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`QEMU did not create its sockets: ${stderr}`);
    await sleep(50);
  }
  // The files appear at bind(), a moment before QEMU listens: one connection each (closed
  // at once; QEMU then serves the next client) proves both monitors accept.
  for (const socket of [main, aux])
    await (await connect(`unix:${socket}`, { waitForListener: true })).close();
  return {
    dir,
    address: `unix:${main}`,
    aux: `unix:${aux}`,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
