/**
 * `fetchOvmf`: Debian's `ovmf` package (UEFI firmware for x86-64 guests) downloaded with the
 * private apt lists of `@qmpkit/debian` and unpacked with `dpkg -x` into the cache — never
 * installed on the host. QEMU runs it as two flash devices: the code read-only in `pflash0`,
 * a writable copy of the variable store in `pflash1` (`ovmfVarsCopy`).
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  cachedDir,
  cacheRepo,
  defaultCacheDir,
  downloadFileName,
  unpackDebs,
} from '@qmpkit/debian';
import { LinuxGuestBuildError } from '../errors.js';
import type { LinuxGuest } from './build.js';

/** The firmware files of one cached `ovmf` build. */
export interface Ovmf {
  /** `OVMF_CODE_4M.fd`: map read-only as `pflash0`. */
  readonly code: string;
  /** `OVMF_VARS_4M.fd`, the pristine variable store: copy it (`ovmfVarsCopy`) for each VM. */
  readonly vars: string;
  /** The package version it came from. */
  readonly version: string;
  readonly cached: boolean;
}

export interface FetchOvmfOptions {
  /** Cache root (default `defaultCacheDir()`). */
  readonly cacheDir?: string;
  /** Default `bookworm`. */
  readonly release?: string;
}

const FILES = ['OVMF_CODE_4M.fd', 'OVMF_VARS_4M.fd'] as const;

/** Downloads and unpacks `ovmf` once per release into `<cacheDir>/ovmf/<release>`. */
export async function fetchOvmf(options: FetchOvmfOptions = {}): Promise<Ovmf> {
  const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
  const release = options.release ?? 'bookworm';
  const target = path.join(cacheDir, 'ovmf', release);
  const { dir, cached } = await cachedDir(target, async (staging) => {
    const apt = cacheRepo(cacheDir);
    const [pkg] = await apt.resolve(['ovmf'], { release });
    if (pkg === undefined) throw new LinuxGuestBuildError('download', 'ovmf did not resolve');
    let file: string;
    try {
      const [deb] = await apt.download([pkg], path.join(cacheDir, 'debian', 'debs'));
      file = deb?.file ?? '';
    } catch (cause) {
      throw new LinuxGuestBuildError('download', (cause as Error).message, { cause });
    }
    const root = path.join(staging, 'root');
    await unpackDebs([file], root);
    for (const name of FILES) {
      const from = path.join(root, 'usr/share/OVMF', name);
      if (!existsSync(from))
        throw new LinuxGuestBuildError('contents', `ovmf ${pkg.version} holds no ${name}`);
      await copyFile(from, path.join(staging, name));
    }
    await writeFile(path.join(staging, 'version'), `${pkg.version}\n`);
  });
  return {
    code: path.join(dir, FILES[0]),
    vars: path.join(dir, FILES[1]),
    version: (await readFile(path.join(dir, 'version'), 'utf8')).trim(),
    cached,
  };
}

/** A private, writable copy of the pristine variable store (raw, 0600) at `file`. */
export async function ovmfVarsCopy(ovmf: Ovmf, file: string): Promise<string> {
  await copyFile(ovmf.vars, file);
  await chmod(file, 0o600);
  return file;
}

/**
 * The guest's kernel as the compressed `vmlinuz` with its EFI stub, for UEFI boots: OVMF
 * starts the kernel QEMU passes through fw_cfg only as a PE/EFI image, not the ELF `vmlinux`
 * the direct (PVH) boot uses. Unpacked once from the kernel package the build downloaded into
 * `<cacheDir>/linux-guest/<key>-efi/vmlinuz`.
 */
export async function efiKernel(
  guest: Pick<LinuxGuest, 'manifest'>,
  options: { cacheDir?: string } = {},
): Promise<string> {
  const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
  const release = guest.manifest.kernelRelease;
  const name = `linux-image-${release}`;
  const pkg = guest.manifest.packages.find((p) => p.name === name);
  if (pkg === undefined)
    throw new LinuxGuestBuildError('contents', `the guest's manifest names no ${name} package`);
  const target = path.join(cacheDir, 'linux-guest', `${guest.manifest.key}-efi`);
  const { dir } = await cachedDir(target, async (staging) => {
    const deb = path.join(cacheDir, 'debian', 'debs', downloadFileName(name, pkg.version, 'amd64'));
    if (!existsSync(deb))
      throw new LinuxGuestBuildError(
        'download',
        `${path.basename(deb)} is not in the download cache; rebuild the guest (refresh: true)`,
      );
    const root = path.join(staging, 'root');
    await unpackDebs([deb], root);
    const vmlinuz = path.join(root, 'boot', `vmlinuz-${release}`);
    if (!existsSync(vmlinuz))
      throw new LinuxGuestBuildError('contents', `${name} holds no boot/vmlinuz-${release}`);
    await copyFile(vmlinuz, path.join(staging, 'vmlinuz'));
    await rm(root, { recursive: true, force: true });
  });
  return path.join(dir, 'vmlinuz');
}
