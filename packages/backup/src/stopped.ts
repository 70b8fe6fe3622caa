/**
 * Push-mode backup of a VM that is not running: its images opened by `qemu-storage-daemon`
 * (the daemon of the QEMU release the VM last ran on, as `qmpkit block` picks it) and the
 * same backup run on the daemon's monitor — the same transaction, the same checkpoint chain.
 * The persistent bitmaps a running VM left in the qcow2 files are loaded by the daemon and
 * carried on, and the bitmap this backup adds is stored in the files when the daemon quits,
 * so the next backup of the running VM continues from it.
 *
 * The VM's run-directory lock is held from before the images are opened until the daemon has
 * closed them: a `Machine` (or `qmpkit vm start`) that tries to start the VM meanwhile is
 * refused with `RunDirLockedError` instead of finding its disks locked, and a VM another
 * process manages is refused the same way before anything is opened.
 */
import { withStoppedVm } from '@qmpkit/machine';
import type { Logger } from '@qmpkit/transport';
import { type BackupResult, type IncrementalOptions, runBackup } from './backup.js';
import { StorageDaemonExitError } from './errors.js';

export interface StoppedBackupOptions extends IncrementalOptions {
  /** `full` starts a new checkpoint chain; `incremental` continues the last point's. */
  readonly kind: 'full' | 'incremental';
  /** The VM's state file (`<vm-dir>/state.json`). */
  readonly stateFile: string;
  /** Its run directory, whose lock says nobody else manages (or starts) the VM. */
  readonly runDir: string;
  /**
   * The storage daemon (a path, a name on `PATH` or a release in the cache). Default: the
   * daemon of the QEMU release the VM last ran on (`storageDaemonFor`).
   */
  readonly storageDaemon?: string;
  readonly cacheDir?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Told about an explicit daemon older than the VM's QEMU. */
  readonly logger?: Pick<Logger, 'warn'>;
}

export interface StoppedBackupResult extends BackupResult {
  /** The `qemu-storage-daemon` that ran the backup. */
  readonly daemon: { readonly path: string; readonly version: string };
}

/**
 * A full or incremental push backup of a stopped VM's disks (see the module comment). Refused
 * before anything opens: a VM whose run directory another process holds (`RunDirLockedError`,
 * e.g. it runs), no daemon of the VM's QEMU (`StorageDaemonVersionError`); the backup's own
 * refusals and failures are those of `backupFull` / `backupIncremental`.
 */
export async function backupStoppedVm(options: StoppedBackupOptions): Promise<StoppedBackupResult> {
  return withStoppedVm(options, async (state, open) => {
    const { daemon, binary } = await open();
    const result = await runBackup(
      { qmp: daemon.qmp, config: state.config },
      options,
      options.kind,
    );
    // The new checkpoint's bitmap reaches the qcow2 files when the daemon closes them (after a
    // failure too withStoppedVm quits it, never kills: see there).
    const exit = await daemon.quit();
    const leftovers =
      exit.code === 0
        ? result.leftovers
        : [...result.leftovers, new StorageDaemonExitError(exit, daemon.stderr)];
    return { ...result, leftovers, daemon: { path: binary.path, version: binary.version } };
  });
}
