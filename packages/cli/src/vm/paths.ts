/**
 * The layout of a VM directory managed by `qmpkit vm` (created 0700; an existing one must be
 * ours and closed to others, since the control socket in it drives the VM):
 *
 * ```
 * <dir>/control.sock     the supervisor's JSON-lines control socket (0600)
 * <dir>/supervisor.log   the supervisor's stdout/stderr (0600)
 * <dir>/state.json       @qmpkit/machine's state file (config, launch options, QEMU pid)
 * <dir>/run/             the machine's run directory
 * <dir>/snapshots/       the @qmpkit/snapshots store (manifest.json, states/, layers/)
 * ```
 */
import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CliUsageError } from '../errors.js';

export interface VmPaths {
  readonly dir: string;
  readonly control: string;
  readonly log: string;
  readonly stateFile: string;
  readonly runDir: string;
  readonly snapshots: string;
}

/** UNIX socket paths longer than this do not fit `sockaddr_un` on Linux. */
const SOCKET_PATH_MAX = 107;

export function vmPaths(dir: string): VmPaths {
  const root = path.resolve(dir);
  return {
    dir: root,
    control: path.join(root, 'control.sock'),
    log: path.join(root, 'supervisor.log'),
    stateFile: path.join(root, 'state.json'),
    runDir: path.join(root, 'run'),
    snapshots: path.join(root, 'snapshots'),
  };
}

/** Refuses a control socket path that does not fit a UNIX socket address. */
export function checkSocketPath(paths: VmPaths): void {
  if (Buffer.byteLength(paths.control) > SOCKET_PATH_MAX)
    throw new CliUsageError(
      `--dir ${paths.dir}: the control socket path would be ${Buffer.byteLength(paths.control)} bytes, more than a UNIX socket allows (${SOCKET_PATH_MAX}); use a shorter directory`,
    );
}

/**
 * Creates the VM directory (0700) or checks an existing one: a directory (not a symlink),
 * owned by this user, with no access for group or others.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw new CliUsageError(`--dir ${dir}: not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid)
    throw new CliUsageError(`--dir ${dir}: owned by uid ${info.uid}, not by this user (${uid})`);
  if ((info.mode & 0o077) !== 0)
    throw new CliUsageError(
      `--dir ${dir}: mode ${(info.mode & 0o777).toString(8)} lets others in; the control socket needs a private directory (chmod 700)`,
    );
}
