/**
 * Run as a separate Node process by `process-crash.qemu.test.ts`: launches the test guest
 * (state file in `<dir>/run`), opens the store `<dir>/store` with `<strategy>`, saves
 * `previous`, then saves `victim` and, when the save reports phase `<phase>`, prints
 * `{"phase": …}` and — with `<who>` = `self` — SIGKILLs itself right there (with `parent`,
 * it runs on until the test kills it). Lines on stdout, one JSON document each:
 *   {"ready": {stateFile, qemuPid, at}}   after `previous` (`at`: the counter before it)
 *   {"phase": "<phase>"}                  the kill point
 *   {"done": true}                        the save finished (only if nobody killed us)
 *
 *   node --conditions=@qmpkit/source --import tsx save-child.test-support.ts \
 *     <dir> <strategy> <phase> <self|parent>
 */
import path from 'node:path';
import { launch } from '@qmpkit/machine';
import { launchQemu } from '@qmpkit/testguest/test-support';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import { COUNTER, guestConfig, nextCounter } from './qemu.test-support.js';

const [dir, strategy, phase, who] = process.argv.slice(2);
if (dir === undefined || strategy === undefined || phase === undefined || who === undefined)
  throw new Error('usage: save-child <dir> <strategy> <phase> <self|parent>');
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const config = await guestConfig(dir, { name: 'guest' });
const machine = await launch(config, {
  ...launchQemu(),
  consoles: ['ser0'],
  runDir: path.join(dir, 'run'),
  logger: { warn: () => {} },
});
await machine.console('ser0').expect(COUNTER, { timeout: 30_000 });
const snaps = await openSnapshots(machine, {
  dir: path.join(dir, 'store'),
  strategy: strategy as StrategyKind,
});
const at = await nextCounter(machine);
await snaps.save('previous');
await nextCounter(machine);
say({ ready: { stateFile: machine.stateFile, qemuPid: machine.pid, at } });
await snaps.save('victim', {
  onProgress: (p) => {
    if (p.phase !== phase) return;
    say({ phase: p.phase }); // synchronous on a pipe (Linux)
    if (who === 'self') process.kill(process.pid, 'SIGKILL');
  },
}).result;
say({ done: true });
setInterval(() => {}, 1000);
