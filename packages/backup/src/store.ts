/**
 * The backup directory: `backup.json` (the manifest, written atomically and only after a
 * backup completed) and one qcow2 file per disk and point, `<device>.<point>.qcow2`. An
 * incremental point's file names the previous point's file of the same disk as its backing
 * file (relative name), so `qemu-img` reads any point as a whole disk.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@qmpkit/machine';
import { BackupStoreError } from './errors.js';

export const MANIFEST = 'backup.json';
export const FORMAT = 'qmpkit-backup';
export const VERSION = 1;

export interface DiskPoint {
  /** Device id (the stable name of a disk across restarts). */
  readonly device: string;
  /** The block node backed up (the disk's active layer at that time). */
  readonly node: string;
  /** File name in the backup directory. */
  readonly file: string;
  readonly virtualSize: number;
  /** Bytes the job copied (a full: the disk's size; an incremental: the dirty clusters). */
  readonly copied: number;
}

export interface BackupPoint {
  /** `0001`, `0002`, …: the order in the directory. */
  readonly id: string;
  readonly kind: 'full' | 'incremental';
  /** The checkpoint (bitmap name on every disk) this point starts. */
  readonly checkpoint: string;
  /** The checkpoint the data was taken since (incremental only). */
  readonly since?: string;
  readonly startedAt: string;
  readonly completedAt: string;
  readonly disks: readonly DiskPoint[];
}

export interface BackupManifest {
  readonly format: typeof FORMAT;
  readonly version: typeof VERSION;
  /** Prefix of the bitmap names this directory creates (so stale ones are recognised). */
  readonly prefix: string;
  readonly points: readonly BackupPoint[];
}

export function manifestPath(dir: string): string {
  return path.join(dir, MANIFEST);
}

/** The manifest, or `undefined` when the directory has none yet. */
export async function readManifest(dir: string): Promise<BackupManifest | undefined> {
  const file = manifestPath(dir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BackupStoreError(file, 'unreadable', 'cannot read the backup manifest', {
      cause: error,
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new BackupStoreError(file, 'unreadable', 'the backup manifest is not JSON', {
      cause: error,
    });
  }
  const m = doc as Partial<BackupManifest>;
  if (m.format !== FORMAT || m.version !== VERSION || !Array.isArray(m.points))
    throw new BackupStoreError(
      file,
      'not-a-backup',
      `not a ${FORMAT} v${VERSION} manifest (format ${String(m.format)}, version ${String(m.version)})`,
    );
  return m as BackupManifest;
}

export async function writeManifest(dir: string, manifest: BackupManifest): Promise<void> {
  await writeFileAtomic(manifestPath(dir), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Creates the backup directory 0700 if missing. */
export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export function pointId(n: number): string {
  return String(n).padStart(4, '0');
}

export function diskFile(device: string, id: string): string {
  return `${device}.${id}.qcow2`;
}

/** Points `0..=id` that `id` needs: back to (and including) the nearest full before it. */
export function pointsUpTo(manifest: BackupManifest, id: string): BackupPoint[] {
  const index = manifest.points.findIndex((p) => p.id === id);
  if (index < 0) return [];
  let start = index;
  while (start > 0 && manifest.points[start]?.kind !== 'full') start--;
  return manifest.points.slice(start, index + 1);
}
