/**
 * `@qmpkit/backup`: full and incremental backup of a running VM's disks.
 *
 * - `backupFull(machine, { dir })`, `backupIncremental(machine, { dir, ifBroken? })`: all disks
 *   in one `transaction` (one instant), checkpoints as persistent dirty bitmaps, a qcow2
 *   file per disk and point whose backing file is the previous point.
 * - `pullBackupFull` / `pullBackupIncremental`: pull mode — the disks at one instant exported
 *   over NBD (fleecing, with the checkpoint bitmap), only the dirty extents read; on a unix
 *   socket in the run dir, or on TCP (`tcp`) under TLS.
 * - `backupStoppedVm({ kind, stateFile, runDir, dir })`: the same push backup of a VM that is
 *   not running, on its images opened by `qemu-storage-daemon`, under the VM's lock.
 * - `restore({ from, to, point? })`, `listBackups(dir)`.
 * - Pure parts: `selectDisks`, `checkChain`, `planBackup` (testable without QEMU).
 */
export type { BackupOptions, BackupResult, IncrementalOptions } from './backup.js';
export { backupFull, backupIncremental } from './backup.js';
export type { BackupPlan, Disk, DiskJob, ReportedBitmap } from './chain.js';
export { checkChain, diskJob, planBackup, selectDisks } from './chain.js';
export type { ChainProblem, ChainProblemKind, PullExportReason } from './errors.js';
export {
  BackupChainError,
  BackupFailedError,
  BackupStoreError,
  BackupUnsupportedError,
  CheckpointExistsError,
  isBackupChainError,
  isBackupFailedError,
  isBackupStoreError,
  isBackupUnsupportedError,
  isCheckpointExistsError,
  isPullExportError,
  isRestoreTargetError,
  isStorageDaemonExitError,
  PullExportError,
  RestoreTargetError,
  StorageDaemonExitError,
} from './errors.js';
export type { BackupHost, BackupQmp } from './host.js';
export type { NbdConnectOptions, NbdExtent, NbdTlsOptions } from './nbd/client.js';
export { NbdClient } from './nbd/client.js';
export type { NbdTlsFailure } from './nbd/errors.js';
export {
  isNbdProtocolError,
  isNbdServerError,
  isNbdTlsError,
  NbdProtocolError,
  NbdServerError,
  NbdTlsError,
} from './nbd/errors.js';
export type { PullOptions, PullPhase, PullResult, PullTcp, PullTls } from './pull.js';
export { pullBackupFull, pullBackupIncremental } from './pull.js';
export type { RestoreOptions, RestoreResult } from './restore.js';
export { listBackups, restore } from './restore.js';
export type { StoppedBackupOptions, StoppedBackupResult } from './stopped.js';
export { backupStoppedVm } from './stopped.js';
export type { BackupManifest, BackupPoint, DiskPoint } from './store.js';
export type { InterruptedBackup } from './teardown.js';
