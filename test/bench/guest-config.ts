// What the QEMU benches launch, in one place: the tiny test guest (boot disk + COM1 on
// chardev `ser0`) and one qcow2 data disk filled with data (bench:backup, bench:backup-pull).
// Not a bench itself: imported by them.
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type AccelConfig, MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine, runQemuImg } from '@qmpkit/machine';

/**
 * The test guest: `pc-i440fx-7.2`, `mib` MiB, `image` on `ide.0` (raw when it ends in `.raw`,
 * nodes `boot-file`/`boot`; else qcow2, nodes `disk0-file`/`disk0`), COM1 on a null chardev
 * `ser0` (to be a console). `overrides` replace whole members (e.g. `machine`, `objects`).
 */
export function guestConfig(
  image: string,
  accel: readonly AccelConfig[],
  mib: number,
  overrides: Partial<VmConfig> = {},
): VmConfig {
  const raw = image.endsWith('.raw');
  const node = raw ? 'boot' : 'disk0';
  return {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...accel],
    memory: { size: mib * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': `${node}-file`, filename: image },
      raw
        ? { driver: 'raw', 'node-name': node, file: `${node}-file` }
        : { driver: 'qcow2', 'node-name': node, file: `${node}-file` },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: node, bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
    ...overrides,
  };
}

/**
 * A VM (32 MiB, no guest code) launched in `dir` with one qcow2 disk `disk0` of `sizeMiB`,
 * every byte written (0x5a) and synced to disk before it starts: otherwise the first timed
 * copy competes with the kernel's writeback of what qemu-io just wrote, and whichever runs
 * first looks several times slower than it is.
 */
export async function launchFilledDisk(
  dir: string,
  sizeMiB: number,
  accel: readonly AccelConfig[],
): Promise<{ vm: Machine; image: string }> {
  const image = join(dir, 'disk0.qcow2');
  await runQemuImg(['create', '-q', '-f', 'qcow2', image, `${sizeMiB}M`]);
  await promisify(execFile)('qemu-io', ['-f', 'qcow2', image, '-c', `write -P 0x5a 0 ${sizeMiB}M`]);
  const fh = await open(image, 'r+');
  await fh.sync();
  await fh.close();
  const vm = await launch(
    {
      machine: { type: 'pc-i440fx-7.2' },
      accel: [...accel],
      memory: { size: 32 * MiB },
      blockdevs: [
        { driver: 'file', 'node-name': 'disk0-file', filename: image },
        { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
      ],
      devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'disk0', bus: 'ide.0' }],
    },
    { runDirParent: dir },
  );
  return { vm, image };
}
