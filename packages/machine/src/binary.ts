/**
 * `QemuBinary`: one description of "which QEMU to run" — the executable, the data dir it
 * needs as `-L`, the module dir it needs as `QEMU_MODULE_DIR`, and its version — so machine,
 * the tests and the CLI start a QEMU unpacked beside the system's (e.g. 10.0 from Debian
 * bookworm-backports under `<cache>/qemu/10.0/root`) the same way they start the system's.
 *
 * A QEMU unpacked with `dpkg -x` must run with its own modules: without `QEMU_MODULE_DIR` it
 * loads the system's (another build) and fails ("Only modules from the same build can be
 * loaded"). `resolveQemuBinary` refuses such a root before anything is started.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { defaultCacheDir as debianDefaultCacheDir } from '@qmpkit/debian';
import { QemuBinaryError } from './errors.js';

/** Which QEMU to run and how. Build it with `resolveQemuBinary`. */
export interface QemuBinary {
  /** Absolute path of the executable (or a bare name looked up on `PATH`). */
  readonly path: string;
  /** QEMU's version as `--version` prints it, e.g. `10.0.2`. */
  readonly version: string;
  /** `major.minor`, e.g. `10.0`. */
  readonly release: string;
  /** Directory passed as `-L` (firmware, keymaps), or `undefined` for QEMU's built-in one. */
  readonly dataDir: string | undefined;
  /** Directory for `QEMU_MODULE_DIR`, or `undefined` for QEMU's built-in one. */
  readonly moduleDir: string | undefined;
  /** Where the description came from. */
  readonly source: 'path' | 'cache';
}

/** The options a spawn needs to run `binary`: put them before any other argument. */
export function qemuBinaryArgs(binary: QemuBinary): string[] {
  return binary.dataDir === undefined ? [] : ['-L', binary.dataDir];
}

/** The environment to spawn `binary` with: `base` plus `QEMU_MODULE_DIR` when it needs one. */
export function qemuBinaryEnv(
  binary: Pick<QemuBinary, 'moduleDir'>,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  if (binary.moduleDir === undefined) {
    // A module dir inherited from the caller's environment would point this QEMU at another build's modules.
    const { QEMU_MODULE_DIR: _inherited, ...rest } = base;
    return rest;
  }
  return { ...base, QEMU_MODULE_DIR: binary.moduleDir };
}

/** The default cache (`$QMPKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/qmpkit`, else `~/.cache/qmpkit`). */
export const defaultCacheDir: (env?: NodeJS.ProcessEnv) => string = debianDefaultCacheDir;

/** Where `fetchQemu(release)` unpacks a release inside `cacheDir`. */
export function qemuCacheDir(cacheDir: string, release: string): string {
  return path.join(cacheDir, 'qemu', release);
}

/** Paths inside an unpacked Debian root (`dpkg -x` of the qemu-system packages). */
export function unpackedRootLayout(root: string): {
  executable: string;
  dataDir: string;
  moduleDir: string;
} {
  return {
    executable: path.join(root, 'usr/bin/qemu-system-x86_64'),
    dataDir: path.join(root, 'usr/share/qemu'),
    moduleDir: path.join(root, 'usr/lib/x86_64-linux-gnu/qemu'),
  };
}

export interface ResolveQemuOptions {
  /** Cache that `qemu fetch` fills (default `defaultCacheDir()`). */
  readonly cacheDir?: string;
  /** Milliseconds to wait for `--version` (default 10 000). */
  readonly timeoutMs?: number;
  /** Environment to run `--version` in (default `process.env`; `QEMU_MODULE_DIR` is set per binary). */
  readonly env?: NodeJS.ProcessEnv;
}

const RELEASE = /^\d+\.\d+$/;

/**
 * Resolves `spec` to a `QemuBinary` and checks it by running `--version`:
 * - `'10.0'` (a `major.minor`): the release fetched into the cache (`qmpkit qemu fetch 10.0`);
 * - a path: that executable; when it lies in an unpacked root (`<root>/usr/bin/…`, root not
 *   `/`), that root's data and module dirs are used and must exist;
 * - a bare name (`qemu-system-x86_64`): looked up on `PATH`.
 */
export async function resolveQemuBinary(
  spec: string,
  options: ResolveQemuOptions = {},
): Promise<QemuBinary> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const env = options.env ?? process.env;
  if (RELEASE.test(spec)) {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const dir = qemuCacheDir(cacheDir, spec);
    const root = path.join(dir, 'root');
    if (!existsSync(path.join(dir, 'manifest.json')) || !existsSync(root)) {
      throw new QemuBinaryError('not-fetched', spec, {
        detail: `QEMU ${spec} is not in the cache ${dir}; fetch it with \`qmpkit qemu fetch ${spec}\``,
      });
    }
    const binary = await fromRoot(root, spec, 'cache', timeoutMs, env);
    if (binary.release !== spec) {
      throw new QemuBinaryError('version-mismatch', spec, {
        detail: `the cache for ${spec} holds QEMU ${binary.version}`,
        version: binary.version,
      });
    }
    return binary;
  }
  if (!spec.includes('/'))
    return probe(
      { path: spec, dataDir: undefined, moduleDir: undefined, source: 'path' },
      spec,
      timeoutMs,
      env,
    );
  const file = existingFile(spec);
  const bin = path.dirname(file);
  const root =
    path.basename(bin) === 'bin' && path.basename(path.dirname(bin)) === 'usr'
      ? path.dirname(path.dirname(bin))
      : undefined;
  if (root !== undefined && root !== path.parse(root).root)
    return fromRoot(root, spec, 'path', timeoutMs, env, file);
  return probe(
    { path: file, dataDir: undefined, moduleDir: undefined, source: 'path' },
    spec,
    timeoutMs,
    env,
  );
}

async function fromRoot(
  root: string,
  spec: string,
  source: QemuBinary['source'],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
  executable?: string,
): Promise<QemuBinary> {
  const layout = unpackedRootLayout(root);
  const file = executable ?? layout.executable;
  if (!existsSync(file))
    throw new QemuBinaryError('not-found', spec, { detail: `${file} does not exist` });
  if (!existsSync(layout.moduleDir)) {
    throw new QemuBinaryError('missing-module-dir', spec, {
      detail: `${file} lies in an unpacked root without its module dir ${layout.moduleDir}: it would load the system QEMU's modules (another build) and fail; unpack qemu-system-common and the qemu-system-modules-* packages of the same version there`,
    });
  }
  if (!existsSync(layout.dataDir)) {
    throw new QemuBinaryError('missing-data-dir', spec, {
      detail: `${file} lies in an unpacked root without its data dir ${layout.dataDir}; unpack qemu-system-data of the same version there`,
    });
  }
  return probe(
    { path: file, dataDir: layout.dataDir, moduleDir: layout.moduleDir, source },
    spec,
    timeoutMs,
    env,
  );
}

/** Parses the first line of `qemu-system-* --version`; `undefined` when it is not QEMU's. */
export function parseQemuVersion(text: string): string | undefined {
  return /^QEMU emulator version (\d+\.\d+\.\d+)/m.exec(text)?.[1];
}

/**
 * Versions already read, per executable file (path, inode, size, mtime), module dir and kind
 * of program: a launch checks its binary every time, and an unchanged file prints the same
 * `--version`.
 */
const probed = new Map<string, string>();

/** What `probeVersion` expects a program's `--version` to print. */
export interface VersionFormat {
  /** What the first line must look like, for the error message (`QEMU emulator version X.Y.Z`). */
  readonly expected: string;
  /** The `X.Y.Z` in the output, or `undefined` when it is not this program's. */
  readonly parse: (text: string) => string | undefined;
}

/**
 * Runs `file --version` (with `moduleDir` as `QEMU_MODULE_DIR`) and returns the version
 * `format` finds in it. A file that cannot be run or prints something else is a
 * `QemuBinaryError` (`not-found` for ENOENT, `not-qemu` otherwise) naming `spec`.
 */
export async function probeVersion(
  file: string,
  spec: string,
  format: VersionFormat,
  options: {
    readonly moduleDir: string | undefined;
    readonly env: NodeJS.ProcessEnv;
    readonly timeoutMs: number;
  },
): Promise<string> {
  const info = file.includes('/') ? statSync(file, { throwIfNoEntry: false }) : undefined;
  const key =
    info === undefined
      ? undefined
      : [file, info.ino, info.size, info.mtimeMs, options.moduleDir ?? '', format.expected].join(
          '\0',
        );
  const known = key === undefined ? undefined : probed.get(key);
  if (known !== undefined) return known;
  const { code, output, error } = await runOnce(
    file,
    ['--version'],
    qemuBinaryEnv({ moduleDir: options.moduleDir }, options.env),
    options.timeoutMs,
  );
  if (error) {
    const reason = error.code === 'ENOENT' ? 'not-found' : 'not-qemu';
    const why = error.code === 'EACCES' ? 'it is not executable' : error.message;
    throw new QemuBinaryError(reason, spec, {
      detail: `${file} could not be run: ${why}`,
      cause: error,
    });
  }
  const version = format.parse(output);
  if (code !== 0 || version === undefined) {
    throw new QemuBinaryError('not-qemu', spec, {
      detail: `${file} --version ${code === 0 ? `did not print "${format.expected}"` : `exited with ${String(code)}`}: ${JSON.stringify(output.trim().slice(0, 200))}`,
    });
  }
  if (key !== undefined) probed.set(key, version);
  return version;
}

const QEMU_VERSION: VersionFormat = {
  expected: 'QEMU emulator version X.Y.Z',
  parse: parseQemuVersion,
};

async function probe(
  base: Omit<QemuBinary, 'version' | 'release'>,
  spec: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
): Promise<QemuBinary> {
  const version = await probeVersion(base.path, spec, QEMU_VERSION, {
    moduleDir: base.moduleDir,
    env,
    timeoutMs,
  });
  return { ...base, version, release: releaseOf(version) };
}

/** `major.minor` of `X.Y.Z`. */
export function releaseOf(version: string): string {
  const [major, minor] = version.split('.');
  return `${major}.${minor}`;
}

/**
 * `spec` as an absolute path to a file that exists: `not-found` (`QemuBinaryError`) when it
 * does not, `not-qemu` when it is not a file (a directory).
 */
export function existingFile(spec: string): string {
  const file = path.resolve(spec);
  if (!existsSync(file))
    throw new QemuBinaryError('not-found', spec, { detail: `${file} does not exist` });
  if (!statSync(file).isFile())
    throw new QemuBinaryError('not-qemu', spec, { detail: `${file} is not a file` });
  return file;
}

/** Runs `file args` (no shell, killed after `timeoutMs`) and collects stdout and stderr. */
export function runOnce(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; output: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    let failed: NodeJS.ErrnoException | undefined;
    child.once('error', (e: NodeJS.ErrnoException) => {
      failed = e;
    });
    child.once('close', (code) =>
      resolve({
        code,
        output: Buffer.concat(chunks).toString('utf8'),
        ...(failed ? { error: failed } : {}),
      }),
    );
  });
}

/** The manifest `fetchQemu` writes beside the unpacked root. */
export interface QemuCacheManifest {
  readonly format: 'qmpkit-qemu-cache';
  readonly formatVersion: 1;
  readonly release: string;
  /** Version printed by the binary, e.g. `10.0.2`. */
  readonly version: string;
  readonly suite: string;
  readonly packages: readonly { name: string; version: string; sha256: string }[];
}

/** Reads a cache entry's manifest, or `undefined` when there is none. */
export function readQemuCacheManifest(
  cacheDir: string,
  release: string,
): QemuCacheManifest | undefined {
  const file = path.join(qemuCacheDir(cacheDir, release), 'manifest.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as QemuCacheManifest;
}
