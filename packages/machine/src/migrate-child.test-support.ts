/**
 * Run as a separate Node process by `live-migration-disks.qemu.test.ts` (kill trials of our
 * own process): launches the qcow2 test guest (run dir `<dir>/src`), starts a disk-copy
 * migration into `<dir>/tgt` and, when the migration enters `<phase>`, prints one JSON line
 * `{ stateFile, sourcePid, targetPid, targetStateFile, phase }` and SIGKILLs itself. Both QEMUs outlive it.
 *
 *   node --conditions=@qmpkit/source --import tsx migrate-child.test-support.ts <dir> <phase> [<qemu>]
 */
import path from 'node:path';
import { launchQemu } from '@qmpkit/testguest/test-support';
import { migrate } from './live-migration.js';
import { launch } from './machine.js';
import { qcow2GuestConfig } from './qemu.test-support.js';

const [dir, phase, targetQemu] = process.argv.slice(2);
if (dir === undefined || phase === undefined)
  throw new Error('usage: migrate-child <dir> <phase> [<target qemu>]');
const { config } = await qcow2GuestConfig(dir, { name: 'child', sizeMiB: 2 });
const source = await launch(config, {
  ...launchQemu(),
  consoles: ['ser0'],
  runDir: path.join(dir, 'src'),
  logger: { warn: () => {} },
});
await source.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
const run = migrate(
  source,
  { runDir: path.join(dir, 'tgt'), ...(targetQemu !== undefined ? { qemu: targetQemu } : {}) },
  {
    disks: 'copy',
    logger: { warn: () => {} },
    onPhase: (p, { target }) => {
      if (p !== phase) return;
      process.stdout.write(
        `${JSON.stringify({ stateFile: source.stateFile, sourcePid: source.pid, targetPid: target?.pid ?? null, targetStateFile: target?.stateFile ?? null, phase: p })}\n`,
      );
      process.kill(process.pid, 'SIGKILL');
    },
  },
);
await run.result;
process.stdout.write(`${JSON.stringify({ error: `the migration ended before phase ${phase}` })}\n`);
process.exit(1);
