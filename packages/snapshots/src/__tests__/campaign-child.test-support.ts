/**
 * Run as a separate Node process by `crash-campaign.qemu.test.ts`, which SIGKILLs it at a
 * seeded moment after it prints `{"go": …}`. Operations (`<op>`):
 * - `launch`: `{"go"}`, then launches the test guest (run dir `<dir>/run`);
 * - `save`/`load`: launches, opens the store `<dir>/store` with `<strategy>`, saves
 *   `previous`, prints `{"ready": {stateFile, at}}` (`at`: a counter read before that save),
 *   then `{"go"}` and saves `victim` / loads `previous`.
 * `{"done": true}` when the operation finished before the kill.
 *
 *   node --conditions=@qmpkit/source --import tsx campaign-child.test-support.ts \
 *     <dir> <strategy> <launch|save|load>
 */
import path from 'node:path';
import { launch } from '@qmpkit/machine';
import { launchQemu } from '@qmpkit/testguest/test-support';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import { COUNTER, guestConfig, nextCounter } from './qemu.test-support.js';

const [dir, strategy, op] = process.argv.slice(2);
if (dir === undefined || strategy === undefined || op === undefined)
  throw new Error('usage: campaign-child <dir> <strategy> <launch|save|load>');
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const quiet = { warn: () => {} };

const config = await guestConfig(dir, { name: 'guest' });
const runDir = path.join(dir, 'run');
if (op === 'launch') {
  say({ go: true });
  await launch(config, { ...launchQemu(), consoles: ['ser0'], runDir, logger: quiet });
  say({ done: true });
} else {
  const machine = await launch(config, {
    ...launchQemu(),
    consoles: ['ser0'],
    runDir,
    logger: quiet,
  });
  await machine.console('ser0').expect(COUNTER, { timeout: 30_000 });
  const snaps = await openSnapshots(machine, {
    dir: path.join(dir, 'store'),
    strategy: strategy as StrategyKind,
  });
  const at = await nextCounter(machine);
  await snaps.save('previous');
  await nextCounter(machine);
  say({ ready: { stateFile: machine.stateFile, at } });
  say({ go: true });
  if (op === 'save') await snaps.save('victim').result;
  else await snaps.load('previous').result;
  say({ done: true });
}
setInterval(() => {}, 1000);
