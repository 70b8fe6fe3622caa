/**
 * Guest RAM in a file, for templates and copy-on-write clones (Kata's VM templating).
 *
 * Save side: the guest RAM is a `memory-backend-file` with `share: true`, so QEMU writes it
 * straight into its `mem-path`; with the `x-ignore-shared` migration capability the stream
 * leaves that RAM block out (only device state and non-shared RAM such as ROMs go in). The
 * file is copied into the store while the guest is still paused, so the running VM can
 * keep writing its own file afterwards.
 *
 * Clone side: the same backend is opened on the store's copy with `share: false`, which QEMU
 * maps `MAP_PRIVATE`: every page the clone writes becomes its own anonymous copy, the file is
 * never written. `x-ignore-shared` must be on for the incoming side too (the stream then
 * carries each RAM block's guest address, which only that mode reads). See
 * docs/notes/clones.md for what was verified on QEMU 7.2 and 10.0.
 */
import { constants } from 'node:fs';
import { copyFile, open, rm, stat } from 'node:fs/promises';
import type { VmConfig } from '@qmpkit/devices';
import type { MachineQmp } from '@qmpkit/machine';
import { SnapshotIntegrityError } from './errors.js';
import { sha256File } from './statefile.js';
import type { RamFileRecord, SharedRamFallbackReason } from './types.js';

/** The guest RAM backend of `config` when it is a shared file; otherwise why not. */
export function sharedRamBackend(
  config: VmConfig,
):
  | { readonly id: string; readonly memPath: string }
  | { readonly reason: SharedRamFallbackReason; readonly detail: string } {
  const id = config.machine['memory-backend'];
  if (id === undefined)
    return {
      reason: 'no-memory-backend',
      detail: 'the machine has no memory-backend object (plain -m RAM is anonymous memory)',
    };
  const object = (config.objects ?? []).find((o) => o.id === id) as
    | (Record<string, unknown> & { 'qom-type': string })
    | undefined;
  if (object?.['qom-type'] !== 'memory-backend-file' || typeof object['mem-path'] !== 'string')
    return {
      reason: 'not-file-backed',
      detail: `memory backend '${id}' is ${object?.['qom-type'] ?? 'missing'}, not a memory-backend-file with a mem-path`,
    };
  if (object.share !== true)
    return {
      reason: 'not-shared',
      detail: `memory backend '${id}' is not share: true, so QEMU would not leave it out of the stream`,
    };
  return { id, memPath: object['mem-path'] };
}

/** Whether the live schema of this QEMU has the `x-ignore-shared` migration capability. */
export async function hasIgnoreShared(qmp: MachineQmp): Promise<boolean> {
  const caps = await qmp.execute('query-migrate-capabilities');
  return caps.some((c) => c.capability === 'x-ignore-shared');
}

/**
 * `config` with its RAM backend opened privately on `ramFile` (`share: false`: QEMU maps
 * the file `MAP_PRIVATE`; the guest's writes never reach it). `readonly` is left off: on
 * QEMU < 8.2 it also maps the pages read-only (the guest could not write its RAM), and on
 * newer ones it needs `rom: off`, which the configuration model (validated against 7.2's
 * schema) does not know.
 */
export function privateRamConfig(config: VmConfig, ramFile: RamFileRecord): VmConfig {
  return {
    ...config,
    objects: (config.objects ?? []).map((o) =>
      o.id === ramFile.backend ? { ...o, 'mem-path': ramFile.path, share: false } : o,
    ) as VmConfig['objects'] & object,
  };
}

/** Copies the RAM file (a reflink where the filesystem can), fsyncs it, returns its record. */
export async function copyRamFile(
  from: string,
  to: string,
  backend: string,
): Promise<RamFileRecord> {
  try {
    // Created 0600 by us first (copyFile keeps the mode of a file that exists).
    await (await open(to, 'wx', 0o600)).close();
    await copyFile(from, to, constants.COPYFILE_FICLONE);
    const handle = await open(to, 'r');
    let bytes: number;
    try {
      await handle.sync();
      bytes = (await handle.stat()).size;
    } finally {
      await handle.close();
    }
    return { path: to, bytes, sha256: await sha256File(to), backend };
  } catch (error) {
    await rm(to, { force: true });
    throw error;
  }
}

/**
 * Checks a snapshot's RAM file before anything is started: its size, and with `full` its
 * SHA-256 (`SnapshotIntegrityError` naming the problem).
 */
export async function verifyRamFile(
  snapshot: string,
  ramFile: RamFileRecord,
  mode: 'full' | 'size',
): Promise<void> {
  let size: number;
  try {
    size = (await stat(ramFile.path)).size;
  } catch (cause) {
    throw new SnapshotIntegrityError(
      snapshot,
      ramFile.path,
      'missing',
      { message: 'the RAM file of the snapshot is missing' },
      { cause },
    );
  }
  if (size !== ramFile.bytes)
    throw new SnapshotIntegrityError(snapshot, ramFile.path, 'size', {
      expected: String(ramFile.bytes),
      actual: String(size),
      message: `the RAM file has ${size} bytes, the manifest says ${ramFile.bytes}`,
    });
  if (mode === 'size') return;
  const sha256 = await sha256File(ramFile.path);
  if (sha256 !== ramFile.sha256)
    throw new SnapshotIntegrityError(snapshot, ramFile.path, 'checksum', {
      expected: ramFile.sha256,
      actual: sha256,
      message: 'the RAM file changed since the save (SHA-256 differs)',
    });
}
