/**
 * Work on the images of a VM that is not running, through `qemu-storage-daemon` (chain jobs,
 * backups): the run directory's lock is taken first — a VM another process manages is refused
 * with `RunDirLockedError` before anything opens its images, and a start during the work is
 * refused the same way — then the state file is read and, when the caller asks, the daemon of
 * the VM's QEMU release is started on the state's blockdevs.
 *
 * The daemon always ends with `quit`, after a failure too, never with a kill: a killed daemon
 * leaves every persistent dirty bitmap marked in use in the qcow2 files, which the next open
 * reads as inconsistent (and a backup chain would need a new full backup).
 */
import type { Logger } from '@qmpkit/transport';
import { acquireRunDirLock } from './lock.js';
import { type LoadedState, readState } from './state.js';
import { launchStorageDaemon, type StorageDaemon } from './storage-daemon.js';
import { daemonForVm, type StorageDaemonBinary, stateQemu } from './storage-daemon-binary.js';

export interface StoppedVmOptions {
  /** The VM's state file (`<vm-dir>/state.json`). */
  readonly stateFile: string;
  /** Its run directory, whose lock says nobody else manages the VM. */
  readonly runDir: string;
  /**
   * The storage daemon (a path, a name on `PATH` or a release in the cache). Default: the
   * daemon of the QEMU release the VM last ran on (`storageDaemonFor`); one older than that
   * QEMU is used with a warning to `logger`.
   */
  readonly storageDaemon?: string;
  readonly cacheDir?: string;
  readonly logger?: Pick<Logger, 'warn'>;
  readonly env?: NodeJS.ProcessEnv;
}

export interface StoppedVmDaemon {
  readonly daemon: StorageDaemon;
  readonly binary: StorageDaemonBinary;
}

/**
 * Runs `work` with the VM's run directory locked and its state read; `open()` starts the
 * daemon on its images (once: a second call returns the same daemon). The lock is released
 * and a still-running daemon quit when `work` ends, however it ends.
 */
export async function withStoppedVm<T>(
  options: StoppedVmOptions,
  work: (state: LoadedState, open: () => Promise<StoppedVmDaemon>) => Promise<T>,
): Promise<T> {
  const lock = await acquireRunDirLock(options.runDir);
  const opened: { current?: Promise<StoppedVmDaemon> } = {};
  try {
    const state = await readState(options.stateFile);
    const open = async (): Promise<StoppedVmDaemon> => {
      const binary = await daemonForVm(stateQemu(state), {
        ...(options.storageDaemon === undefined ? {} : { explicit: options.storageDaemon }),
        ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
      const daemon = await launchStorageDaemon({
        qemu: binary,
        ...(options.env === undefined ? {} : { env: options.env }),
        runDirParent: options.runDir,
        blockdevs: state.config.blockdevs ?? [],
      });
      return { daemon, binary };
    };
    return await work(state, () => {
      opened.current ??= open();
      return opened.current;
    });
  } finally {
    const daemon = await opened.current?.then(
      (o) => o.daemon,
      // It did not start: nothing to end (work saw the error already).
      () => undefined,
    );
    if (daemon !== undefined && daemon.status === 'running') await daemon.quit();
    await lock.release();
  }
}
