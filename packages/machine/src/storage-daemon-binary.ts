/**
 * Which `qemu-storage-daemon` to run: the system's (a name on `PATH` or a path), or the one of a
 * release fetched into the cache (`qmpkit qemu fetch 10.0` unpacks qemu-utils, which ships it
 * since Debian's 8.0 packages, into `<cache>/qemu-utils/<release>/root`). A daemon of a cached
 * release runs with that release's module dir (`QEMU_MODULE_DIR`): block drivers built as
 * modules must come from the same build, never the system's.
 *
 * `storageDaemonFor(qemu)` picks the daemon of the QEMU a VM runs on (the state file's
 * `launch.binary`): beside that binary, in the cache's qemu-utils tree of its release, or on
 * `PATH`, each checked with `--version`; none of that release is a `StorageDaemonVersionError`
 * listing what was found.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@qmpkit/transport';
import {
  defaultCacheDir,
  existingFile,
  probeVersion,
  qemuBinaryEnv,
  qemuCacheDir,
  releaseOf,
  unpackedRootLayout,
  type VersionFormat,
} from './binary.js';
import {
  isQemuBinaryError,
  QemuBinaryError,
  type StorageDaemonCandidate,
  StorageDaemonError,
  StorageDaemonVersionError,
} from './errors.js';
import { QEMU_TOOL_DOWNLOADS, qemuToolsCacheDir } from './fetch.js';
import { resolveBinary } from './proc.js';
import type { RuntimeFacts, StoredLaunch } from './state.js';

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

const DAEMON_VERSION: VersionFormat = {
  expected: `${STORAGE_DAEMON} version X.Y.Z`,
  parse: parseStorageDaemonVersion,
};

/** The environment to spawn `binary` with (its module dir, never an inherited one). */
export function storageDaemonEnv(
  binary: StorageDaemonBinary,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  return qemuBinaryEnv(binary, base);
}

export interface ResolveStorageDaemonOptions {
  /** Cache that `qemu fetch` fills (default `defaultCacheDir()`). */
  readonly cacheDir?: string;
  /** Milliseconds to wait for `--version` (default 10 000). */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** The daemon a cache holds for `release`, and the module dir of that release's QEMU. */
function cachedDaemon(cacheDir: string, release: string): { file: string; moduleDir: string } {
  return {
    file: path.join(qemuToolsCacheDir(cacheDir, release), 'root/usr/bin', STORAGE_DAEMON),
    moduleDir: unpackedRootLayout(path.join(qemuCacheDir(cacheDir, release), 'root')).moduleDir,
  };
}

/**
 * Resolves `spec` (default `qemu-storage-daemon` on `PATH`) and checks it with `--version`:
 * `'10.0'` (a release) is the one fetched into `cacheDir`; anything else a path or a name.
 * `QemuBinaryError`: `not-fetched`, `not-found`, `not-qemu` (not executable, or not a daemon —
 * e.g. a `qemu-system-*`), `version-mismatch` (a cache holding another release).
 */
export async function resolveStorageDaemon(
  spec: string = STORAGE_DAEMON,
  options: ResolveStorageDaemonOptions = {},
): Promise<StorageDaemonBinary> {
  let base: Omit<StorageDaemonBinary, 'version' | 'release'>;
  if (/^\d+\.\d+$/.test(spec)) {
    const cached = cachedDaemon(options.cacheDir ?? defaultCacheDir(), spec);
    if (!existsSync(cached.file))
      throw new QemuBinaryError('not-fetched', spec, {
        detail: `no ${STORAGE_DAEMON} of QEMU ${spec} in the cache (${cached.file}); fetch it with \`qmpkit qemu fetch ${spec}\``,
      });
    base = {
      path: cached.file,
      moduleDir: existsSync(cached.moduleDir) ? cached.moduleDir : undefined,
      source: 'cache',
    };
  } else {
    const file = spec.includes('/') ? existingFile(spec) : spec;
    base = { path: file, moduleDir: undefined, source: 'path' };
  }
  const binary = await probeDaemon(base, spec, options);
  if (base.source === 'cache' && binary.release !== spec)
    throw new QemuBinaryError('version-mismatch', spec, {
      detail: `the cache for ${spec} holds ${STORAGE_DAEMON} ${binary.version}`,
      version: binary.version,
    });
  return binary;
}

async function probeDaemon(
  base: Omit<StorageDaemonBinary, 'version' | 'release'>,
  spec: string,
  options: ResolveStorageDaemonOptions,
): Promise<StorageDaemonBinary> {
  const version = await probeVersion(base.path, spec, DAEMON_VERSION, {
    moduleDir: base.moduleDir,
    env: options.env ?? process.env,
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  return { ...base, version, release: releaseOf(version) };
}

/** The QEMU whose daemon `storageDaemonFor` picks (the state file's `launch.binary`). */
export interface DaemonQemu {
  /** The QEMU executable (its directory is searched first). */
  readonly path?: string;
  /** Its version, `X.Y.Z`. */
  readonly version: string;
  /** Its module dir (`null`/`undefined`: built-in); a daemon beside it runs with the same. */
  readonly moduleDir?: string | null;
}

/** The daemon picked for a QEMU, with every candidate looked at. */
export interface PickedStorageDaemon {
  readonly binary: StorageDaemonBinary;
  readonly candidates: readonly StorageDaemonCandidate[];
}

/**
 * The cache directory a binary lies in when it is a fetched release
 * (`<cache>/qemu/<release>/root/usr/bin/<exe>`), else `undefined`.
 */
function cacheOfBinary(file: string): string | undefined {
  const parts = file.split(path.sep);
  const n = parts.length;
  if (n < 7 || parts[n - 2] !== 'bin' || parts[n - 3] !== 'usr' || parts[n - 4] !== 'root')
    return undefined;
  if (parts[n - 6] !== 'qemu') return undefined;
  return parts.slice(0, n - 6).join(path.sep) || path.sep;
}

/**
 * Picks the `qemu-storage-daemon` of `qemu`'s release (`major.minor`), checked with
 * `--version`. Looked for, in order: beside the QEMU binary (same directory, same module dir);
 * the qemu-utils tree `qemu fetch` unpacks for that release — in the cache the binary lies in
 * and in `cacheDir`; `qemu-storage-daemon` on `PATH`. The first of the exact version wins,
 * else the first of the same release. None: `StorageDaemonVersionError` with each candidate
 * and its version.
 */
export async function storageDaemonFor(
  qemu: DaemonQemu,
  options: ResolveStorageDaemonOptions = {},
): Promise<PickedStorageDaemon> {
  const release = releaseOf(qemu.version);
  const env = options.env ?? process.env;
  const places: {
    where: StorageDaemonCandidate['where'];
    base: Omit<StorageDaemonBinary, 'version' | 'release'>;
  }[] = [];
  if (qemu.path?.includes('/') === true)
    places.push({
      where: 'beside-binary',
      base: {
        path: path.join(path.dirname(qemu.path), STORAGE_DAEMON),
        moduleDir: qemu.moduleDir ?? undefined,
        source: 'path',
      },
    });
  const caches = [
    qemu.path === undefined ? undefined : cacheOfBinary(path.resolve(qemu.path)),
    options.cacheDir ?? defaultCacheDir(env),
  ];
  for (const cacheDir of new Set(caches.filter((c) => c !== undefined))) {
    const cached = cachedDaemon(cacheDir, release);
    places.push({
      where: 'cache',
      base: {
        path: cached.file,
        moduleDir: existsSync(cached.moduleDir) ? cached.moduleDir : undefined,
        source: 'cache',
      },
    });
  }
  const onPath = await resolveBinary(STORAGE_DAEMON, env);
  if (onPath !== undefined)
    places.push({ where: 'path', base: { path: onPath, moduleDir: undefined, source: 'path' } });

  const seen = new Set<string>();
  const candidates: StorageDaemonCandidate[] = [];
  let sameRelease: StorageDaemonBinary | undefined;
  for (const place of places) {
    if (!existsSync(place.base.path)) continue;
    const real = await realpath(place.base.path);
    if (seen.has(real)) continue;
    seen.add(real);
    try {
      const binary = await probeDaemon(place.base, place.base.path, options);
      candidates.push({ path: binary.path, where: place.where, version: binary.version });
      if (binary.version === qemu.version) return { binary, candidates };
      if (binary.release === release) sameRelease ??= binary;
    } catch (error) {
      if (!isQemuBinaryError(error)) throw error;
      candidates.push({
        path: place.base.path,
        where: place.where,
        version: undefined,
        problem: error.message,
      });
    }
  }
  if (sameRelease !== undefined) return { binary: sameRelease, candidates };
  throw new StorageDaemonVersionError({
    wanted: qemu.version,
    qemu: qemu.path,
    candidates,
    ...(QEMU_TOOL_DOWNLOADS[release] === undefined
      ? {}
      : { hint: `fetch QEMU ${release}'s tools with \`qmpkit qemu fetch ${release}\`` }),
  });
}

/** `-1` when `a` is an older `X.Y.Z` than `b`, `1` when newer, `0` when the same. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/**
 * A daemon that cannot be resolved, as the `StorageDaemonError` a launch reports: `not-found`
 * (no such file, a release not fetched) or `bad-binary` (not executable, not a daemon).
 */
export function storageDaemonSpecError(spec: string, error: unknown): StorageDaemonError {
  return new StorageDaemonError(
    isQemuBinaryError(error) && error.problem !== 'not-found' && error.problem !== 'not-fetched'
      ? 'bad-binary'
      : 'not-found',
    isQemuBinaryError(error) ? error.message : `cannot run ${spec}: ${String(error)}`,
    { argv: [spec] },
    { cause: error },
  );
}

/** The QEMU that last ran a VM, from its state file: `launch.binary`, else the runtime's. */
export function stateQemu(state: {
  readonly launch: Pick<StoredLaunch, 'binary'>;
  readonly runtime: Pick<RuntimeFacts, 'qemuBinary' | 'qemuVersion'>;
}): DaemonQemu | undefined {
  const { binary } = state.launch;
  if (binary !== undefined)
    return { path: binary.path, version: binary.version, moduleDir: binary.moduleDir };
  const v = state.runtime.qemuVersion;
  if (v === null) return undefined;
  return {
    ...(state.runtime.qemuBinary === '' ? {} : { path: state.runtime.qemuBinary }),
    version: `${v.major}.${v.minor}.${v.micro}`,
  };
}

/**
 * The daemon for the images of a stopped VM whose QEMU is `qemu` (`stateQemu`): `explicit`
 * (a path, name or cached release) when given — one older than `qemu` is used, with a warning
 * to `logger`, since it may not know qcow2 features that QEMU wrote; otherwise
 * `storageDaemonFor(qemu)`; the default daemon on `PATH` when the VM never ran (no version
 * recorded). Rejects with `StorageDaemonError` (`not-found`, `bad-binary`) for an unusable
 * `explicit`, `StorageDaemonVersionError` when none of the VM's release is found.
 */
export async function daemonForVm(
  qemu: DaemonQemu | undefined,
  options: ResolveStorageDaemonOptions & {
    readonly explicit?: string;
    readonly logger?: Pick<Logger, 'warn'>;
  } = {},
): Promise<StorageDaemonBinary> {
  if (options.explicit === undefined && qemu !== undefined)
    return (await storageDaemonFor(qemu, options)).binary;
  const resolve = options.explicit ?? STORAGE_DAEMON;
  let binary: StorageDaemonBinary;
  try {
    binary = await resolveStorageDaemon(resolve, options);
  } catch (error) {
    throw storageDaemonSpecError(resolve, error);
  }
  if (qemu !== undefined && compareVersions(binary.version, qemu.version) < 0)
    options.logger?.warn(
      `${STORAGE_DAEMON} ${binary.version} (${binary.path}) is older than QEMU ${qemu.version}, which last ran this VM: it may refuse or mishandle qcow2 features of the newer QEMU; the daemon of QEMU ${releaseOf(qemu.version)} is the safe choice`,
    );
  return binary;
}
