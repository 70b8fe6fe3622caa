/**
 * Run as a separate Node process by `push-crash.qemu.test.ts`: launches a VM with one qcow2
 * disk and a state file, takes a full push backup, writes two runs of 64 KiB, and starts an
 * incremental whose job may copy 1 byte per second: QEMU's rate limit lets the first run
 * through and then holds the job for hours, so the job is running when this process prints
 * one JSON line `{ stateFile, qemuPid }` — the test then SIGKILLs this process in the middle
 * of the job (QEMU, the target nodes, the job and the new checkpoint bitmap live on).
 *
 *   node --conditions=@qmpkit/source --import tsx push-crash-child.test-support.ts <dir>
 */
import path from 'node:path';
import { MiB } from '@qmpkit/devices';
import { launch, runQemuImg } from '@qmpkit/machine';
import { launchQemu, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { backupFull, backupIncremental } from './backup.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: push-crash-child <dir>');
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
await backupFull(m, { dir: backups });
await m.qmp.hmp('qemu-io -d disk0 "write -P 0x42 1M 64k"');
await m.qmp.hmp('qemu-io -d disk0 "write -P 0x43 3M 64k"');
await m.qmp.hmp('qemu-io -d disk0 "flush"');
await backupIncremental(m, {
  dir: backups,
  speed: 1,
  onJobs: () => {
    process.stdout.write(`${JSON.stringify({ stateFile: m.stateFile, qemuPid: m.pid })}\n`);
  },
});
// Only reached if the job was not held: the test sees this line instead of the JSON one.
process.stdout.write('the incremental ended: the rate limit did not hold the job\n');
