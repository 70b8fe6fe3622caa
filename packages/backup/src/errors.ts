/**
 * Error classes of `@qmpkit/backup`. Each has a literal `name`, the fields a caller can act
 * on, and `cause` where there is one; the `is…` guards check `name`, so errors from a second
 * copy of the package are recognised too.
 */

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;
}

/** Why the checkpoint chain cannot carry an incremental backup. */
export type ChainProblemKind =
  /** The backup directory holds no full backup to build on. */
  | 'no-full'
  /** The checkpoint's bitmap is not on the disk's node (removed, or the node changed). */
  | 'bitmap-missing'
  /** QEMU marks the bitmap inconsistent (it was not saved cleanly: QEMU crashed or was killed). */
  | 'bitmap-inconsistent'
  /** The bitmap is in use by another operation (a job, an export). */
  | 'bitmap-busy'
  /** The bitmap exists but does not record writes, so it missed some. */
  | 'bitmap-disabled'
  /** The VM's disks are not the ones the chain was made of. */
  | 'disks-changed';

export interface ChainProblem {
  readonly kind: ChainProblemKind;
  /** The device id the problem is about (absent for `no-full`). */
  readonly device?: string;
  readonly node?: string;
  readonly bitmap?: string;
  readonly detail: string;
}

/**
 * An incremental backup was refused because the checkpoint chain is not intact; nothing was
 * changed. `problems` says what is wrong on which disk; a full backup (or `ifBroken: 'full'`)
 * starts a new chain.
 */
export class BackupChainError extends Error {
  override readonly name = 'BackupChainError' as const;
  readonly problems: readonly ChainProblem[];
  /** Set when a backup of the directory was interrupted (its process died) before this one. */
  readonly interrupted: { readonly id: string; readonly pid: number } | undefined;
  constructor(
    problems: readonly ChainProblem[],
    interrupted?: { readonly id: string; readonly pid: number },
  ) {
    super(
      `the checkpoint chain cannot carry an incremental backup: ${problems
        .map((p) => p.detail)
        .join('; ')}${
        interrupted === undefined
          ? ''
          : ` (backup ${interrupted.id} of process ${interrupted.pid} was interrupted; its leftovers were removed, but the bitmaps QEMU reports now cannot be merged back)`
      }; a full backup is needed (it starts a new chain)`,
    );
    this.problems = problems;
    this.interrupted = interrupted;
  }
}

export function isBackupChainError(value: unknown): value is BackupChainError {
  return hasName(value, 'BackupChainError');
}

/** A checkpoint (bitmap) of that name exists already on a disk; nothing was changed. */
export class CheckpointExistsError extends Error {
  override readonly name = 'CheckpointExistsError' as const;
  readonly checkpoint: string;
  readonly device: string;
  readonly node: string;
  constructor(checkpoint: string, device: string, node: string) {
    super(
      `a dirty bitmap named '${checkpoint}' exists already on node '${node}' (disk '${device}'); choose another checkpoint name`,
    );
    this.checkpoint = checkpoint;
    this.device = device;
    this.node = node;
  }
}

export function isCheckpointExistsError(value: unknown): value is CheckpointExistsError {
  return hasName(value, 'CheckpointExistsError');
}

/** A disk cannot be backed up this way (not qcow2, so no persistent bitmap; unknown device). */
export class BackupUnsupportedError extends Error {
  override readonly name = 'BackupUnsupportedError' as const;
  readonly reasons: readonly string[];
  constructor(reasons: readonly string[]) {
    super(`cannot back up: ${reasons.join('; ')}`);
    this.reasons = reasons;
  }
}

export function isBackupUnsupportedError(value: unknown): value is BackupUnsupportedError {
  return hasName(value, 'BackupUnsupportedError');
}

/**
 * The backup was started but did not complete (a job failed, QEMU refused the transaction,
 * QEMU went away). The VM's disks and earlier backups are untouched, the new target files are
 * removed, and `chainIntact` says whether the next incremental can still build on the last
 * checkpoint (false: the bitmaps could not be put back, a full backup is needed).
 */
export class BackupFailedError extends Error {
  override readonly name = 'BackupFailedError' as const;
  readonly kind: 'full' | 'incremental';
  readonly chainIntact: boolean;
  /** Problems met while putting things back (each also logged in `cause` chains). */
  readonly cleanupErrors: readonly unknown[];
  constructor(
    kind: 'full' | 'incremental',
    fields: { readonly chainIntact: boolean; readonly cleanupErrors: readonly unknown[] },
    options: { cause: unknown },
  ) {
    const why = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      `${kind} backup failed: ${why}${fields.chainIntact ? '' : ' (the checkpoint chain could not be restored: the next backup must be full)'}`,
      options,
    );
    this.kind = kind;
    this.chainIntact = fields.chainIntact;
    this.cleanupErrors = fields.cleanupErrors;
  }
}

export function isBackupFailedError(value: unknown): value is BackupFailedError {
  return hasName(value, 'BackupFailedError');
}

/**
 * The `qemu-storage-daemon` that ran a stopped VM's backup did not end cleanly after it (a
 * leftover of a good backup: the point is complete, but the new checkpoint's bitmap may not
 * have reached the qcow2 files; the next incremental's chain check says so if it did not).
 */
export class StorageDaemonExitError extends Error {
  override readonly name = 'StorageDaemonExitError' as const;
  readonly code: number | null;
  readonly signal: string | null;
  /** The tail of the daemon's standard error. */
  readonly stderr: string;
  constructor(
    exit: { readonly code: number | null; readonly signal: string | null },
    stderr: string,
  ) {
    super(
      `qemu-storage-daemon ended with ${exit.signal ?? `exit code ${exit.code}`} after the backup${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}`,
    );
    this.code = exit.code;
    this.signal = exit.signal;
    this.stderr = stderr;
  }
}

export function isStorageDaemonExitError(value: unknown): value is StorageDaemonExitError {
  return hasName(value, 'StorageDaemonExitError');
}

/** The backup directory's manifest is unreadable or not ours, or a point does not exist. */
export class BackupStoreError extends Error {
  override readonly name = 'BackupStoreError' as const;
  readonly path: string;
  readonly problem: 'unreadable' | 'not-a-backup' | 'no-such-point' | 'missing-file';
  constructor(
    path: string,
    problem: 'unreadable' | 'not-a-backup' | 'no-such-point' | 'missing-file',
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${detail}`, options);
    this.path = path;
    this.problem = problem;
  }
}

export function isBackupStoreError(value: unknown): value is BackupStoreError {
  return hasName(value, 'BackupStoreError');
}

/** A restore target directory exists and is not empty; nothing was written. */
export class RestoreTargetError extends Error {
  override readonly name = 'RestoreTargetError' as const;
  readonly path: string;
  readonly entries: readonly string[];
  constructor(path: string, entries: readonly string[]) {
    super(
      `restore target ${path} is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', …' : ''}); restore into a new or empty directory`,
    );
    this.path = path;
    this.entries = entries;
  }
}

export function isRestoreTargetError(value: unknown): value is RestoreTargetError {
  return hasName(value, 'RestoreTargetError');
}

/** Why a pull-mode export could not be set up or torn down (see `PullExportError`). */
export type PullExportReason =
  /** The NBD socket path is taken; nothing was changed (QEMU would have unlinked it). */
  | 'socket-exists'
  /** The local `qemu-nbd` writing a backup layer did not exit after its client left. */
  | 'writer-stuck'
  /** A TCP export on a host that is not loopback, without `allowRemote`. */
  | 'remote-host'
  /** A TCP export without TLS, without `allowPlaintext`. */
  | 'plaintext-tcp'
  /** The TLS directory lacks files (`missing` names them); nothing was changed in the VM. */
  | 'tls-files'
  /** QEMU refused to start the NBD server (port in use, address not local, bad credentials). */
  | 'server-start';

const PULL_EXPORT_MESSAGES: Record<PullExportReason, (path: string) => string> = {
  'socket-exists': (p) =>
    `the NBD socket path ${p} exists already; remove it or choose another socket`,
  'writer-stuck': (p) => `qemu-nbd serving ${p} did not exit after the backup layer was written`,
  'remote-host': (p) =>
    `the NBD export address ${p} is not loopback: anyone who can reach it can read the disks; pass allowRemote (CLI: --nbd-allow-remote) to export there`,
  'plaintext-tcp': (p) =>
    `a TCP export at ${p} without TLS can be read by anyone who reaches the port; give TLS credentials (CLI: --nbd-tls-dir) or allowPlaintext (CLI: --nbd-plaintext)`,
  'tls-files': (p) => `the TLS directory ${p} lacks files`,
  'server-start': (p) => `QEMU could not start the NBD server at ${p}`,
};

/**
 * A pull-mode export could not be set up or torn down (`reason`). `path` is the socket, the
 * `host:port`, or the TLS directory the reason is about; `missing` the files a TLS directory
 * lacks (absolute paths).
 */
export class PullExportError extends Error {
  override readonly name = 'PullExportError' as const;
  readonly reason: PullExportReason;
  readonly path: string;
  readonly missing: readonly string[];
  constructor(
    reason: PullExportReason,
    path: string,
    details: { readonly missing?: readonly string[]; readonly detail?: string } = {},
    options?: ErrorOptions,
  ) {
    const missing = details.missing ?? [];
    super(
      `${PULL_EXPORT_MESSAGES[reason](path)}${missing.length > 0 ? `: ${missing.join(', ')}` : ''}${details.detail === undefined ? '' : `: ${details.detail}`}`,
      options,
    );
    this.reason = reason;
    this.path = path;
    this.missing = missing;
  }
}

export function isPullExportError(value: unknown): value is PullExportError {
  return hasName(value, 'PullExportError');
}
