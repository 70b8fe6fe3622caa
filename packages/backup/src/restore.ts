/**
 * Restore: any point of a backup directory becomes one image per disk, read through the
 * point's qcow2 chain by `qemu-img convert` (argument array). The target directory must be
 * new or empty, so a restore never overwrites anything.
 */
import { access, chmod, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { runQemuImg } from '@qmpkit/machine';
import { BackupStoreError, RestoreTargetError } from './errors.js';
import { type BackupPoint, manifestPath, pointsUpTo, readManifest } from './store.js';

export interface RestoreOptions {
  /** The backup directory. */
  readonly from: string;
  /** Where the disk images go: a new or empty directory (created 0700). */
  readonly to: string;
  /** Point id (default: the last one). */
  readonly point?: string;
  /** Image format of the restored disks (default `qcow2`). */
  readonly format?: 'qcow2' | 'raw';
  readonly qemuImg?: string;
}

export interface RestoreResult {
  readonly point: BackupPoint;
  readonly disks: readonly { readonly device: string; readonly file: string }[];
}

/** The points of a backup directory, oldest first (empty when it has none). */
export async function listBackups(dir: string): Promise<readonly BackupPoint[]> {
  return (await readManifest(dir))?.points ?? [];
}

export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const manifest = await readManifest(options.from);
  const file = manifestPath(options.from);
  if (manifest === undefined || manifest.points.length === 0)
    throw new BackupStoreError(file, 'no-such-point', 'the backup directory holds no backup');
  const id = options.point ?? manifest.points.at(-1)?.id ?? '';
  const chain = pointsUpTo(manifest, id);
  const point = chain.at(-1);
  if (point === undefined)
    throw new BackupStoreError(
      file,
      'no-such-point',
      `no point '${id}'; known: ${manifest.points.map((p) => p.id).join(', ')}`,
    );
  for (const p of chain)
    for (const d of p.disks) {
      const image = path.join(options.from, d.file);
      try {
        await access(image);
      } catch (cause) {
        throw new BackupStoreError(
          image,
          'missing-file',
          `point ${p.id} of disk '${d.device}' is missing, so point ${id} cannot be restored`,
          { cause },
        );
      }
    }
  let entries: string[] = [];
  try {
    entries = await readdir(options.to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (entries.length > 0) throw new RestoreTargetError(options.to, entries.sort());
  await mkdir(options.to, { recursive: true, mode: 0o700 });
  const format = options.format ?? 'qcow2';
  const disks: { device: string; file: string }[] = [];
  for (const d of point.disks) {
    const out = path.join(options.to, `${d.device}.${format}`);
    await runQemuImg(
      ['convert', '-f', 'qcow2', '-O', format, path.join(options.from, d.file), out],
      options.qemuImg === undefined ? {} : { qemuImg: options.qemuImg },
    );
    await chmod(out, 0o600);
    disks.push({ device: d.device, file: out });
  }
  return { point, disks };
}
