/**
 * Backup-specific helpers for the real-QEMU suites: the VM they all back up (no guest code,
 * only qcow2 data disks) and the disks they write. Binary lookup, skip
 * rules, temp dirs and killing every QEMU come from `@qmpkit/testguest/test-support`. Not
 * part of the published package.
 */
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { type QemuImgOptions, runQemuImg } from '@qmpkit/machine';
import { TEST_ACCEL } from '@qmpkit/testguest/test-support';

/** Size of each test disk: small, and large enough for the tests' writes at 1 and 3 MiB. */
export const DISK_SIZE = 4 * MiB;

export interface DiskVmOptions {
  /** Prefix of the image files: `<dir>/<name>-<id>.qcow2`; absent: `<dir>/<id>.qcow2`. */
  readonly name?: string;
  /** Create the images first (empty, `DISK_SIZE`); false to boot on existing ones. Default true. */
  readonly create?: boolean;
  /** The qemu-img to create them with (the binary under test's). */
  readonly img?: QemuImgOptions;
}

/** The image file of disk `id`, as `diskVmConfig` names it. */
export function diskImage(dir: string, id: string, name?: string): string {
  return path.join(dir, name === undefined ? `${id}.qcow2` : `${name}-${id}.qcow2`);
}

/**
 * The VM the backup tests back up: pc machine, TCG, 32 MiB, no boot disk; per id in `ids` a
 * qcow2 image on IDE bus `ide.<i>` with device id `<id>` over nodes `<id>-file` and
 * `<id>-fmt`. Creates the images unless `create: false`.
 */
export async function diskVmConfig(
  dir: string,
  ids: readonly string[],
  options: DiskVmOptions = {},
): Promise<VmConfig> {
  const files = ids.map((id) => diskImage(dir, id, options.name));
  if (options.create !== false)
    for (const f of files)
      await runQemuImg(['create', '-q', '-f', 'qcow2', f, String(DISK_SIZE)], options.img);
  return {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: 32 * MiB },
    blockdevs: ids.flatMap((id, i) => [
      { driver: 'file' as const, 'node-name': `${id}-file`, filename: files[i] ?? '' },
      { driver: 'qcow2' as const, 'node-name': `${id}-fmt`, file: `${id}-file` },
    ]),
    devices: ids.map((id, i) => ({ driver: 'ide-hd', id, drive: `${id}-fmt`, bus: `ide.${i}` })),
  };
}
