/**
 * Run as a separate Node process by `leftovers.qemu.test.ts`: starts `launch()` of the test
 * guest (run dir `<dir>/run`) and SIGKILLs itself the moment QEMU exists as its child —
 * after the spawn, before QMP is ready. Prints one JSON line `{ qemuPid, stateFile }` first.
 *
 *   node --conditions=@qmpkit/source --import tsx launch-child.test-support.ts <dir>
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { childQemuPids, launchQemu } from '@qmpkit/testguest/test-support';
import { launch } from './machine.js';
import { guestConfig } from './qemu.test-support.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: launch-child <dir>');
const config = await guestConfig(dir, { name: 'launch-child' });

/** The VM's QEMU (it has `-pidfile`), not the `--version` check launch runs first. */
function isVmQemu(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('-pidfile');
  } catch {
    return false;
  }
}

const watch = setInterval(() => {
  const [pid] = childQemuPids().filter(isVmQemu);
  if (pid === undefined) return;
  clearInterval(watch);
  const stateFile = path.join(dir, 'run', 'state.json');
  process.stdout.write(`${JSON.stringify({ qemuPid: pid, stateFile })}\n`);
  process.kill(process.pid, 'SIGKILL');
}, 1);
await launch(config, {
  ...launchQemu(),
  consoles: ['ser0'],
  runDir: path.join(dir, 'run'),
  logger: { warn: () => {} },
});
process.stdout.write(`${JSON.stringify({ error: 'launch finished before the kill' })}\n`);
