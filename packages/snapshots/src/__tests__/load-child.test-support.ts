/**
 * Run as a separate Node process by `leftovers.qemu.test.ts`: launches the test guest (run
 * dir `<dir>/run`), saves `base` into the store `<dir>/store` with the external strategy, then
 * loads it and SIGKILLs itself the moment the load's new QEMU (`-incoming defer`) exists as
 * its child — after the spawn, before the machine recorded its pid in the state file.
 * Prints `{ ready: { stateFile, at } }` after the save and `{ incomingPid }` before the kill.
 *
 *   node --conditions=@qmpkit/source --import tsx load-child.test-support.ts <dir>
 */
import path from 'node:path';
import { launch } from '@qmpkit/machine';
import { childQemuPids, launchQemu } from '@qmpkit/testguest/test-support';
import { openSnapshots } from '../snapshots.js';
import { COUNTER, guestConfig, nextCounter } from './qemu.test-support.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: load-child <dir>');
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const config = await guestConfig(dir, { name: 'guest' });
const machine = await launch(config, {
  ...launchQemu(),
  consoles: ['ser0'],
  runDir: path.join(dir, 'run'),
  logger: { warn: () => {} },
});
await machine.console('ser0').expect(COUNTER, { timeout: 30_000 });
const snaps = await openSnapshots(machine, { dir: path.join(dir, 'store'), strategy: 'external' });
const at = await nextCounter(machine);
await snaps.save('base');
say({ ready: { stateFile: machine.stateFile, at } });
const old = machine.pid;
await snaps.load('base', {
  onProgress: (p) => {
    if (p.phase !== 'restart') return;
    const watch = setInterval(() => {
      const pid = childQemuPids().find((c) => c !== old);
      if (pid === undefined) return;
      clearInterval(watch);
      say({ incomingPid: pid });
      process.kill(process.pid, 'SIGKILL');
    }, 1);
  },
}).result;
say({ error: 'the load finished before the kill' });
