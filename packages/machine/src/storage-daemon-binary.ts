/**
 * Which `qemu-storage-daemon` to run: the system's (a name on `PATH` or a path), or the one of a
 * release fetched into the cache (`qmpkit qemu fetch 10.0` unpacks qemu-utils, which ships it
 * since Debian's 8.0 packages, into `<cache>/qemu-utils/<release>/root`). A daemon of a cached
 * release runs with that release's module dir (`QEMU_MODULE_DIR`): block drivers built as
 * modules must come from the same build, never the system's.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { defaultCacheDir, qemuCacheDir, runOnce, unpackedRootLayout } from './binary.js';
import { QemuBinaryError } from './errors.js';
import { qemuToolsCacheDir } from './fetch.js';

/** A `qemu-storage-daemon` to run. Build it with `resolveStorageDaemon`. */
export interface StorageDaemonBinary {
  /** The executable (absolute path, or a bare name looked up on `PATH`). */
  readonly path: string;
  /** As `--version` prints it, e.g. `10.0.2`. */
  readonly version: string;
  /** `major.minor`. */
  readonly release: string;
  /** `QEMU_MODULE_DIR` to run it with, or `undefined` for its built-in one. */
  readonly moduleDir: string | undefined;
  readonly source: 'path' | 'cache';
}

/** The executable's name on `PATH` (Debian: package qemu-system-common ≤ 7.2, qemu-utils ≥ 8.0). */
export const STORAGE_DAEMON = 'qemu-storage-daemon';

/** Parses `qemu-storage-daemon version 7.2.22 (…)`; `undefined` when it is not the daemon's. */
export function parseStorageDaemonVersion(text: string): string | undefined {
  return /^qemu-storage-daemon version (\d+\.\d+\.\d+)/m.exec(text)?.[1];
}

/** The environment to spawn `binary` with. */
export function storageDaemonEnv(
  binary: StorageDaemonBinary,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  if (binary.moduleDir === undefined) {
    // An inherited module dir would point the daemon at another build's modules.
    const { QEMU_MODULE_DIR: _inherited, ...rest } = base;
    return rest;
  }
  return { ...base, QEMU_MODULE_DIR: binary.moduleDir };
}

/**
 * Resolves `spec` (default `qemu-storage-daemon` on `PATH`) and checks it with `--version`:
 * `'10.0'` (a release) is the one fetched into `cacheDir`; anything else a path or a name.
 */
export async function resolveStorageDaemon(
  spec: string = STORAGE_DAEMON,
  options: {
    readonly cacheDir?: string;
    readonly timeoutMs?: number;
    readonly env?: NodeJS.ProcessEnv;
  } = {},
): Promise<StorageDaemonBinary> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let base: Omit<StorageDaemonBinary, 'version' | 'release'>;
  if (/^\d+\.\d+$/.test(spec)) {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const file = path.join(qemuToolsCacheDir(cacheDir, spec), 'root/usr/bin', STORAGE_DAEMON);
    if (!existsSync(file))
      throw new QemuBinaryError('not-fetched', spec, {
        detail: `no ${STORAGE_DAEMON} of QEMU ${spec} in the cache (${file}); fetch it with \`qmpkit qemu fetch ${spec}\``,
      });
    const moduleDir = unpackedRootLayout(path.join(qemuCacheDir(cacheDir, spec), 'root')).moduleDir;
    base = {
      path: file,
      moduleDir: existsSync(moduleDir) ? moduleDir : undefined,
      source: 'cache',
    };
  } else {
    if (spec.includes('/')) {
      const file = path.resolve(spec);
      if (!existsSync(file))
        throw new QemuBinaryError('not-found', spec, { detail: `${file} does not exist` });
      if (!statSync(file).isFile())
        throw new QemuBinaryError('not-qemu', spec, { detail: `${file} is not a file` });
      base = { path: file, moduleDir: undefined, source: 'path' };
    } else base = { path: spec, moduleDir: undefined, source: 'path' };
  }
  const partial: StorageDaemonBinary = { ...base, version: '', release: '' };
  const { code, output, error } = await runOnce(
    base.path,
    ['--version'],
    storageDaemonEnv(partial, options.env),
    timeoutMs,
  );
  if (error)
    throw new QemuBinaryError(error.code === 'ENOENT' ? 'not-found' : 'not-qemu', spec, {
      detail: `${base.path} could not be run: ${error.message}`,
      cause: error,
    });
  const version = parseStorageDaemonVersion(output);
  if (code !== 0 || version === undefined)
    throw new QemuBinaryError('not-qemu', spec, {
      detail: `${base.path} --version did not print "qemu-storage-daemon version X.Y.Z": ${JSON.stringify(output.trim().slice(0, 200))}`,
    });
  const [major, minor] = version.split('.');
  const release = `${major}.${minor}`;
  if (base.source === 'cache' && release !== spec)
    throw new QemuBinaryError('version-mismatch', spec, {
      detail: `the cache for ${spec} holds ${STORAGE_DAEMON} ${version}`,
      version,
    });
  return { ...base, version, release };
}
