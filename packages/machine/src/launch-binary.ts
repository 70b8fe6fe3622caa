/**
 * Which QEMU a launch or relaunch runs: a `QemuBinary`, a path, a release in the cache
 * (`10.0`) or a name on `PATH`, checked (`--version`) before anything is created; and how the
 * state file records it (path, version, `-L`/module dirs, size and mtime), so a relaunch
 * runs the same binary and notices when it was replaced or removed.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '@qmpkit/transport';
import { type QemuBinary, resolveQemuBinary } from './binary.js';
import { isQemuBinaryError, QemuBinaryError, QemuLaunchError } from './errors.js';
import { resolveBinary } from './proc.js';
import type { StoredBinary } from './state.js';

/** What `launch`/`relaunch` accept as `qemu`. */
export type QemuSpec = string | QemuBinary;

/**
 * Resolves and checks `spec`. A binary that does not exist is a `QemuLaunchError`
 * (`not-found`, with `argv`) as it always was; one that is not QEMU, or an unpacked root
 * without its module or data dir, a `QemuBinaryError`.
 */
export async function binaryFromSpec(
  spec: QemuSpec,
  env: NodeJS.ProcessEnv,
  argv: (binary: string) => string[],
  cacheDir?: string,
): Promise<QemuBinary> {
  const notFound = (name: string, cause?: unknown) =>
    new QemuLaunchError(
      'not-found',
      `QEMU binary '${name}' not found (ENOENT)`,
      { argv: argv(name) },
      cause === undefined ? undefined : { cause },
    );
  if (typeof spec !== 'string') {
    const info = await stat(spec.path).catch(() => undefined);
    if (info === undefined) throw notFound(spec.path);
    return spec;
  }
  let target = spec;
  if (!spec.includes('/') && !/^\d+\.\d+$/.test(spec)) {
    const found = await resolveBinary(spec, env);
    if (found === undefined) throw notFound(spec);
    target = found;
  }
  try {
    return await resolveQemuBinary(target, {
      env,
      ...(cacheDir !== undefined ? { cacheDir } : {}),
    });
  } catch (error) {
    if (isQemuBinaryError(error) && error.problem === 'not-found' && target.includes('/'))
      throw notFound(spec, error);
    throw error;
  }
}

/** The record of `binary` for the state file. */
export async function storedBinary(binary: QemuBinary): Promise<StoredBinary> {
  const info = await stat(binary.path);
  return {
    path: binary.path,
    version: binary.version,
    dataDir: binary.dataDir ?? null,
    moduleDir: binary.moduleDir ?? null,
    size: info.size,
    mtimeMs: info.mtimeMs,
  };
}

/**
 * The binary a state file names. Gone: `QemuBinaryError` (`not-found`), and nothing is
 * started. Replaced (size or mtime differ): checked again with `--version`, and a warning
 * says which version runs now. Otherwise its dirs must still exist (`missing-module-dir`,
 * `missing-data-dir`).
 */
export async function binaryFromState(
  stored: StoredBinary,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<QemuBinary> {
  const info = await stat(stored.path).catch(() => undefined);
  if (info === undefined)
    throw new QemuBinaryError('not-found', stored.path, {
      detail: `the state file names QEMU ${stored.version} at ${stored.path}, which no longer exists; relaunch with \`qemu\` set to the binary to use now`,
      version: stored.version,
    });
  if (info.size !== stored.size || info.mtimeMs !== stored.mtimeMs) {
    const now = await resolveQemuBinary(stored.path, { env });
    logger.warn(
      `QEMU at ${stored.path} was replaced since the last launch (QEMU ${stored.version}, now ${now.version}); the VM keeps its pinned machine type`,
    );
    return now;
  }
  for (const [dir, problem] of [
    [stored.moduleDir, 'missing-module-dir'],
    [stored.dataDir, 'missing-data-dir'],
  ] as const) {
    if (dir !== null && (await stat(dir).catch(() => undefined)) === undefined)
      throw new QemuBinaryError(problem, stored.path, {
        detail: `${dir}, which the state file records for this binary, no longer exists`,
      });
  }
  const [major, minor] = stored.version.split('.');
  return {
    path: stored.path,
    version: stored.version,
    release: `${major}.${minor}`,
    dataDir: stored.dataDir ?? undefined,
    moduleDir: stored.moduleDir ?? undefined,
    source: 'path',
  };
}
