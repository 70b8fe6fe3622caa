/**
 * Backup-specific helpers for the real-QEMU suites: the VM they all back up (no guest code,
 * only qcow2 data disks) and the backup scenarios of machine's crash child. Binary lookup, skip
 * rules, temp dirs and killing every QEMU come from `@qmpkit/testguest/test-support`. Not
 * part of the published package.
 */
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { type Machine, type QemuImgOptions, runQemuImg } from '@qmpkit/machine';
import { TEST_ACCEL } from '@qmpkit/testguest/test-support';
import type { CrashScenario } from '../../machine/src/crash.test-support.js';
import { backupFull, backupIncremental } from './backup.js';
import { pullBackupFull, pullBackupIncremental } from './pull.js';

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

/** This file, for `startCrashChild(…, name, BACKUP_SCENARIOS)`. */
export const BACKUP_SCENARIOS: string = import.meta.filename;

/**
 * A VM with one disk `disk0` under `dir`, a full backup into `<dir>/backup`, then two runs of
 * 64 KiB written (at 1 MiB, 0x42 and 3 MiB, 0x43), so the incremental has two extents.
 */
async function fullThenTwoWrites(
  m: Machine,
  full: (dir: string) => Promise<unknown>,
  backups: string,
): Promise<void> {
  await m.qmp.hmp('qemu-io -d disk0 "write -P 0x41 0 256k"');
  await full(backups);
  await m.qmp.hmp('qemu-io -d disk0 "write -P 0x42 1M 64k"');
  await m.qmp.hmp('qemu-io -d disk0 "write -P 0x43 3M 64k"');
  await m.qmp.hmp('qemu-io -d disk0 "flush"');
}

/**
 * Backup scenarios of machine's crash child (`crash-child.test-support.ts`), each on one
 * qcow2 disk `disk0` after a full backup into `<dir>/backup` and two writes:
 * - `push` (for `push-crash.qemu.test.ts`): an incremental push whose job may copy 1 byte per
 *   second: QEMU's rate limit lets the first run through and then holds the job for hours,
 *   so it is running when the child is ready (QEMU, the targets, the job and the new
 *   checkpoint bitmap live on after the kill);
 * - `pull` (for `pull-crash.qemu.test.ts`): an incremental pull, ready (and held inside the
 *   backup) once the first extent is read (QEMU, its export, fleecing nodes and jobs live on).
 */
export const crashScenarios: Record<'push' | 'pull', CrashScenario> = {
  push: {
    config: (dir) => diskVmConfig(dir, ['disk0']),
    async run(m, dir, ready) {
      const backups = path.join(dir, 'backup');
      await fullThenTwoWrites(m, (d) => backupFull(m, { dir: d }), backups);
      await backupIncremental(m, { dir: backups, speed: 1, onJobs: ready });
    },
  },
  pull: {
    config: (dir) => diskVmConfig(dir, ['disk0']),
    async run(m, dir, ready) {
      const backups = path.join(dir, 'backup');
      await fullThenTwoWrites(m, (d) => pullBackupFull(m, { dir: d }), backups);
      await pullBackupIncremental(m, {
        dir: backups,
        onPhase: async (p) => {
          if (p.phase !== 'extent') return;
          ready();
          // Held inside the pull until the test kills the child.
          await new Promise(() => {});
        },
      });
    },
  },
};
