/**
 * Run as a separate Node process by `leftovers.qemu.test.ts`: starts `launch()` of the test
 * guest (run dir `<dir>/run`) and SIGKILLs itself the moment QEMU exists as its child —
 * after the spawn, before QMP is ready. Prints one JSON line `{ qemuPid, stateFile }` first.
 *
 *   node --conditions=@qmpkit/source --import tsx launch-child.test-support.ts <dir>
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { launch } from './machine.js';
import { guestConfig } from './qemu.test-support.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: launch-child <dir>');
const config = await guestConfig(dir, { name: 'launch-child' });

/** QEMU children of this process's main thread (where libuv spawns; tsx runs esbuild too). */
function qemuChildren(): number[] {
  try {
    const text = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8');
    return text
      .split(' ')
      .filter((s) => s.trim() !== '')
      .map(Number)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system');
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

const watch = setInterval(() => {
  const [pid] = qemuChildren();
  if (pid === undefined) return;
  clearInterval(watch);
  const stateFile = path.join(dir, 'run', 'state.json');
  process.stdout.write(`${JSON.stringify({ qemuPid: pid, stateFile })}\n`);
  process.kill(process.pid, 'SIGKILL');
}, 1);
await launch(config, {
  consoles: ['ser0'],
  runDir: path.join(dir, 'run'),
  logger: { warn: () => {} },
});
process.stdout.write(`${JSON.stringify({ error: 'launch finished before the kill' })}\n`);
