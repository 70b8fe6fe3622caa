/**
 * Run as a separate Node process by `pull-crash.qemu.test.ts`: launches a VM with one qcow2
 * disk and a state file, takes a full pull backup, writes, and starts an incremental pull.
 * Once the first extent is read it prints one JSON line `{ stateFile, qemuPid }` and waits
 * inside the backup — the test then SIGKILLs this process in the middle of the pull (QEMU,
 * its export, fleecing nodes and jobs live on).
 *
 *   node --conditions=@qmpkit/source --import tsx pull-crash-child.test-support.ts <dir>
 */
import path from 'node:path';
import { MiB } from '@qmpkit/devices';
import { launch, runQemuImg } from '@qmpkit/machine';
import { launchQemu, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { pullBackupFull, pullBackupIncremental } from './pull.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: pull-crash-child <dir>');
const disk = path.join(dir, 'disk0.qcow2');
await runQemuImg(['create', '-q', '-f', 'qcow2', disk, String(4 * MiB)]);
const m = await launch(
  {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: 32 * MiB },
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: disk },
      { driver: 'qcow2', 'node-name': 'disk0-fmt', file: 'disk0-file' },
    ],
    devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'disk0-fmt', bus: 'ide.0' }],
  },
  { ...launchQemu(), runDir: path.join(dir, 'run'), logger: { warn: () => {} } },
);
const backups = path.join(dir, 'backup');
await m.qmp.hmp('qemu-io -d disk0 "write -P 0x41 0 256k"');
await pullBackupFull(m, { dir: backups });
// Two runs of 64 KiB, so the incremental reads two extents.
await m.qmp.hmp('qemu-io -d disk0 "write -P 0x42 1M 64k"');
await m.qmp.hmp('qemu-io -d disk0 "write -P 0x43 3M 64k"');
await m.qmp.hmp('qemu-io -d disk0 "flush"');
await pullBackupIncremental(m, {
  dir: backups,
  onPhase: async (p) => {
    if (p.phase !== 'extent') return;
    process.stdout.write(`${JSON.stringify({ stateFile: m.stateFile, qemuPid: m.pid })}\n`);
    // Held here until the test kills this process.
    await new Promise(() => {});
  },
});
