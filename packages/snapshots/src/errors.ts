/**
 * Error classes of `@qmpkit/snapshots`. Each has a literal `name`, the fields a caller can
 * act on, and `cause` where there is one; the `is…` guards check `name`, so errors from a
 * second copy of the package are recognised too.
 */
import type { StrategyKind } from './types.js';

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;
}

/** No snapshot of that name in the store (or, for internal ones, in the image). */
export class SnapshotNotFoundError extends Error {
  override readonly name = 'SnapshotNotFoundError' as const;
  readonly snapshot: string;
  /** Names that do exist, to help with typos. */
  readonly known: readonly string[];
  constructor(snapshot: string, known: readonly string[], detail?: string) {
    super(
      `no snapshot '${snapshot}'${detail ? ` (${detail})` : ''}; known: ${known.length > 0 ? known.join(', ') : 'none'}`,
    );
    this.snapshot = snapshot;
    this.known = known;
  }
}

/** A snapshot of that name exists already and `overwrite` was not given. */
export class SnapshotExistsError extends Error {
  override readonly name = 'SnapshotExistsError' as const;
  readonly snapshot: string;
  /** Where it was found: the store's manifest, or the disk image (an internal tag). */
  readonly where: 'store' | 'image';
  constructor(snapshot: string, where: 'store' | 'image') {
    super(
      where === 'store'
        ? `snapshot '${snapshot}' exists already; pass overwrite: true to replace it`
        : `an internal snapshot tag '${snapshot}' exists in the disk image (not made by this store); pass overwrite: true to replace it`,
    );
    this.snapshot = snapshot;
    this.where = where;
  }
}

/**
 * Why a snapshot cannot load here. Refusals before anything is touched (no QEMU started or
 * ended, nothing written):
 * - `machine-type-missing`: the loading binary has no such (pinned) machine type;
 * - `machine-type-differs`, `device-set-differs`, `ram-differs`, `cpus-differs`: the VM's
 *   configuration is not the one the snapshot was saved on (a migration stream loads only
 *   into an identical machine);
 * - `mapped-ram-unsupported`: a mapped-ram state file onto a QEMU without mapped-ram;
 * - `binary-missing`, `not-qemu`, `module-dir-missing`: the binary the load would run is gone,
 *   is not QEMU, or is an unpacked root without its module dir (or its data dir);
 * - `incompatible-state`: the compatibility probe (the same configuration migrated from the
 *   saving into the loading binary on scratch images) failed; `qemuStderr` has QEMU's reason.
 *
 * And after the fact, when the VM was already touched (`SnapshotLoadFailedError` and its
 * subclass `SnapshotRestoreError`): `qemu-refused`, QEMU started the load and failed it
 * (`qemuStderr`); `load-timeout`, the loading QEMU did not finish within the load's deadline
 * and was killed.
 */
export type CannotLoadReason =
  | 'machine-type-missing'
  | 'machine-type-differs'
  | 'device-set-differs'
  | 'ram-differs'
  | 'cpus-differs'
  | 'mapped-ram-unsupported'
  | 'binary-missing'
  | 'not-qemu'
  | 'module-dir-missing'
  | 'data-dir-missing'
  | 'incompatible-state'
  | 'qemu-refused'
  | 'load-timeout';

/** One QEMU binary as an error names it (either side may be unknown). */
export interface CannotLoadBinary {
  readonly path: string | undefined;
  readonly version: string | undefined;
}

export interface CannotLoadFields {
  readonly snapshot: string;
  /** The binary that saved the snapshot, as the manifest records it. */
  readonly saved?: CannotLoadBinary;
  /** The binary the load would run (or ran). */
  readonly loading?: CannotLoadBinary;
  /** What the snapshot has / needs (e.g. `33554432 bytes`, `pc-i440fx-7.2`). */
  readonly expected?: string;
  /** What the VM or the loading binary has instead. */
  readonly actual?: string;
  /** The relevant lines of the loading QEMU's stderr (`incompatible-state`, `qemu-refused`). */
  readonly qemuStderr?: string;
  /** What to do about it, appended to the message. */
  readonly hint?: string;
}

/** The names of this hierarchy's classes (guards check names, not only `instanceof`). */
export type CannotLoadErrorName =
  | 'SnapshotCannotLoadError'
  | 'SnapshotMismatchError'
  | 'SnapshotLoadFailedError'
  | 'SnapshotRestoreError'
  | (string & {});

function stderrBlock(text: string | undefined): string {
  if (text === undefined || text.trim() === '') return '';
  return `\nQEMU's stderr:\n${text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}`;
}

function side(b: CannotLoadBinary | undefined): string | undefined {
  if (b === undefined) return undefined;
  return `QEMU ${b.version ?? '?'}${b.path !== undefined ? ` (${b.path})` : ''}`;
}

/**
 * "This snapshot cannot load here": the one base class of every refusal to load and of a load
 * QEMU failed. `reason` says which (see `CannotLoadReason`); the other fields say with what.
 * Catch this (or test `isSnapshotCannotLoadError`) to handle all of them; subclasses keep
 * their own names and fields. The tree has two branches:
 * - refusals before anything is touched (this class, `SnapshotMismatchError` and its
 *   `SnapshotStateFormatError`): the VM runs on as it was, `touched` is false;
 * - `SnapshotLoadFailedError` (internal loads) and its `SnapshotRestoreError` (external
 *   loads): the load had started, so the VM was touched (paused, or its QEMU replaced and
 *   stopped); `touched` is true and `isSnapshotLoadFailedError` recognises both.
 */
export class SnapshotCannotLoadError extends Error {
  override readonly name: CannotLoadErrorName = 'SnapshotCannotLoadError';
  /** Brand shared by every class of the hierarchy, also those of other packages' subclasses. */
  readonly snapshotCannotLoad = true as const;
  /** Whether the load had touched the VM before it failed (see the class comment). */
  readonly touched: boolean = false;
  readonly reason: CannotLoadReason;
  readonly snapshot: string;
  readonly saved: CannotLoadBinary | undefined;
  readonly loading: CannotLoadBinary | undefined;
  readonly expected: string | undefined;
  readonly actual: string | undefined;
  readonly qemuStderr: string | undefined;

  constructor(
    reason: CannotLoadReason,
    fields: CannotLoadFields & { readonly message?: string },
    options?: { cause?: unknown },
  ) {
    const sides = [
      fields.saved !== undefined ? `saved on ${side(fields.saved)}` : undefined,
      fields.loading !== undefined ? `loading on ${side(fields.loading)}` : undefined,
    ].filter((s) => s !== undefined);
    const head =
      fields.message ??
      `snapshot '${fields.snapshot}' cannot load here (${reason})${
        fields.expected !== undefined || fields.actual !== undefined
          ? `: the snapshot has ${fields.expected ?? '?'}, here ${fields.actual ?? '?'}`
          : ''
      }`;
    super(
      `${head}${sides.length > 0 ? ` [${sides.join('; ')}]` : ''}${fields.hint ? `; ${fields.hint}` : ''}${stderrBlock(fields.qemuStderr)}`,
      options,
    );
    this.reason = reason;
    this.snapshot = fields.snapshot;
    this.saved = fields.saved;
    this.loading = fields.loading;
    this.expected = fields.expected;
    this.actual = fields.actual;
    this.qemuStderr = fields.qemuStderr;
  }
}

/** What about a snapshot does not fit the VM it is loaded into. */
export type MismatchField =
  | 'machine-type'
  | 'device-config'
  | 'memory'
  | 'cpus'
  | 'qemu-version'
  | 'state-format';

const MISMATCH_REASON: Record<MismatchField, CannotLoadReason> = {
  'machine-type': 'machine-type-differs',
  'device-config': 'device-set-differs',
  memory: 'ram-differs',
  cpus: 'cpus-differs',
  'qemu-version': 'incompatible-state',
  'state-format': 'mapped-ram-unsupported',
};

/**
 * The snapshot was taken on a different machine type or device configuration than the VM
 * has now. Migration streams only load into an identical machine, so `load` refuses before
 * anything is touched. Part of the `SnapshotCannotLoadError` hierarchy (`reason` follows
 * `field`: `ram-differs`, `cpus-differs`, `device-set-differs`, `machine-type-differs`).
 */
export class SnapshotMismatchError extends SnapshotCannotLoadError {
  override readonly name: CannotLoadErrorName = 'SnapshotMismatchError';
  readonly field: MismatchField;
  override readonly expected: string;
  override readonly actual: string;
  constructor(
    snapshot: string,
    field: MismatchField,
    expected: string,
    actual: string,
    extra: Omit<CannotLoadFields, 'snapshot' | 'expected' | 'actual'> & {
      readonly reason?: CannotLoadReason;
    } = {},
  ) {
    const { reason, ...rest } = extra;
    super(reason ?? MISMATCH_REASON[field], {
      ...rest,
      snapshot,
      expected,
      actual,
      message: `snapshot '${snapshot}' does not fit this VM: ${field} of the snapshot is ${expected}, the VM has ${actual}`,
    });
    this.field = field;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * QEMU started the load and failed it (`reason: 'qemu-refused'`): a `snapshot-load` job error
 * (which says only "Error -22 while loading VM state") or an HMP `loadvm` error, with the
 * loading QEMU's stderr lines that say why (`qemuStderr`, also in the message). The VM is
 * left paused (or resumed when it was running and QEMU kept its old state). The branch of the
 * hierarchy for loads that failed after touching the VM (`touched: true`; brand `loadFailed`,
 * which `isSnapshotLoadFailedError` checks so that subclasses count).
 */
export class SnapshotLoadFailedError extends SnapshotCannotLoadError {
  override readonly name: CannotLoadErrorName = 'SnapshotLoadFailedError';
  override readonly touched = true;
  readonly loadFailed = true as const;
  readonly strategy: StrategyKind;
  /** The command that failed (`snapshot-load`, `loadvm`, `migrate-incoming`). */
  readonly command: string;
  /** QEMU's own error text (the job's or HMP's). */
  readonly desc: string;
  constructor(
    init: {
      snapshot: string;
      strategy: StrategyKind;
      command: string;
      desc: string;
      qemuStderr: string;
      loading?: CannotLoadBinary;
      /** Default `qemu-refused`. */
      reason?: CannotLoadReason;
      /** Default: strategy, command and QEMU's error text. */
      message?: string;
    },
    options?: { cause?: unknown },
  ) {
    super(
      init.reason ?? 'qemu-refused',
      {
        snapshot: init.snapshot,
        qemuStderr: init.qemuStderr,
        ...(init.loading !== undefined ? { loading: init.loading } : {}),
        message:
          init.message ??
          `${init.strategy} load of '${init.snapshot}': ${init.command}: ${init.desc}`,
      },
      options,
    );
    this.strategy = init.strategy;
    this.command = init.command;
    this.desc = init.desc;
  }
}

/**
 * The snapshot's state file is `mapped-ram` and this QEMU has no `mapped-ram` migration
 * capability (QEMU < 9.0, e.g. 7.2): it cannot read the file. Raised before anything is
 * touched. Save with `portable: true` for a snapshot that loads on such a QEMU. A
 * `SnapshotMismatchError` with `field: 'state-format'` and `reason: 'mapped-ram-unsupported'`.
 */
export class SnapshotStateFormatError extends SnapshotMismatchError {
  constructor(snapshot: string, qemuVersion: string) {
    super(
      snapshot,
      'state-format',
      'a QEMU with the mapped-ram migration capability (9.0 or newer)',
      `QEMU ${qemuVersion} without it; save the snapshot with portable: true (the stream format) to load it there`,
    );
  }
}

export type StateFileProblem =
  | 'missing'
  | 'size'
  | 'checksum'
  | 'magic'
  | 'version'
  | 'layer-missing'
  | 'unreadable';

/**
 * A state file (or an overlay layer) of an external snapshot failed verification before
 * anything was touched: the running VM is unchanged.
 */
export class SnapshotIntegrityError extends Error {
  override readonly name = 'SnapshotIntegrityError' as const;
  readonly snapshot: string;
  readonly file: string;
  readonly problem: StateFileProblem;
  readonly expected: string | undefined;
  readonly actual: string | undefined;
  constructor(
    snapshot: string,
    file: string,
    problem: StateFileProblem,
    detail: { expected?: string; actual?: string; message: string },
    options?: { cause?: unknown },
  ) {
    super(`snapshot '${snapshot}': ${file}: ${detail.message}`, options);
    this.snapshot = snapshot;
    this.file = file;
    this.problem = problem;
    this.expected = detail.expected;
    this.actual = detail.actual;
  }
}

/**
 * QEMU refused a snapshot operation. `desc` is QEMU's own text: an HMP `Error: …` string
 * (which QMP reports as a successful reply), a job's `query-jobs[].error`, a QMP error or a
 * MIGRATION `failed` status with `query-migrate`'s `error-desc`.
 */
export class SnapshotQemuError extends Error {
  override readonly name = 'SnapshotQemuError' as const;
  readonly strategy: StrategyKind;
  readonly operation: 'save' | 'load' | 'delete' | 'list';
  /** The command that failed (`savevm`, `snapshot-save`, `migrate`, …). */
  readonly command: string;
  readonly desc: string;
  /** HMP: the whole reply (QEMU prints the reason on lines before `Error: …`). */
  readonly output: string | undefined;
  constructor(
    init: {
      strategy: StrategyKind;
      operation: 'save' | 'load' | 'delete' | 'list';
      command: string;
      desc: string;
      output?: string;
    },
    options?: { cause?: unknown },
  ) {
    super(`${init.strategy} ${init.operation}: ${init.command}: ${init.desc}`, options);
    this.strategy = init.strategy;
    this.operation = init.operation;
    this.command = init.command;
    this.desc = init.desc;
    this.output = init.output;
  }
}

/** How the destination QEMU of an external restore failed. */
export type RestoreOutcome = 'failed' | 'exited' | 'timeout';

/**
 * The destination QEMU of an external restore failed (QEMU 7.2 reports a failed incoming
 * migration only on its stderr and with exit code 1), exited, or did not finish within the
 * load's deadline (`outcome`). The VM's previous QEMU had been replaced, and the machine is
 * stopped afterwards: a `SnapshotLoadFailedError` (`touched: true`) with `reason`
 * `qemu-refused` (failed, exited) or `load-timeout`.
 */
export class SnapshotRestoreError extends SnapshotLoadFailedError {
  override readonly name: CannotLoadErrorName = 'SnapshotRestoreError';
  readonly outcome: RestoreOutcome;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The tail of the destination QEMU's stderr (also `qemuStderr`). */
  readonly stderr: string;
  constructor(
    snapshot: string,
    outcome: RestoreOutcome,
    fields: { exitCode: number | null; signal: string | null; stderr: string; detail: string },
    options?: { cause?: unknown },
  ) {
    super(
      {
        snapshot,
        strategy: 'external',
        command: 'migrate-incoming',
        desc: fields.detail,
        qemuStderr: fields.stderr,
        reason: outcome === 'timeout' ? 'load-timeout' : 'qemu-refused',
        message: `restoring '${snapshot}': ${fields.detail}`,
      },
      options,
    );
    this.outcome = outcome;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stderr = fields.stderr;
  }
}

/** The strategy cannot work with this VM (the reasons say why), or the snapshot is another strategy's. */
export class SnapshotUnsupportedError extends Error {
  override readonly name = 'SnapshotUnsupportedError' as const;
  readonly strategy: StrategyKind;
  readonly reasons: readonly string[];
  constructor(strategy: StrategyKind, reasons: readonly string[]) {
    super(`${strategy}: ${reasons.join('; ')}`);
    this.strategy = strategy;
    this.reasons = reasons;
  }
}

/** The operation was aborted through its `AbortSignal` (or `task.abort()`). */
export class SnapshotAbortedError extends Error {
  override readonly name = 'SnapshotAbortedError' as const;
  readonly snapshot: string;
  /** The phase that was running. */
  readonly phase: string;
  constructor(snapshot: string, phase: string, options?: { cause?: unknown }) {
    super(`snapshot '${snapshot}': aborted during ${phase}`, options);
    this.snapshot = snapshot;
    this.phase = phase;
  }
}

/** An operation did not finish within its deadline (which scales with the VM's RAM). */
export class SnapshotTimeoutError extends Error {
  override readonly name = 'SnapshotTimeoutError' as const;
  readonly snapshot: string;
  readonly phase: string;
  readonly timeoutMs: number;
  constructor(snapshot: string, phase: string, timeoutMs: number) {
    super(`snapshot '${snapshot}': ${phase} did not finish within ${timeoutMs} ms`);
    this.snapshot = snapshot;
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** The store's manifest is unreadable or not ours, or a store file could not be written. */
export class SnapshotStoreError extends Error {
  override readonly name = 'SnapshotStoreError' as const;
  readonly path: string;
  readonly problem: string;
  constructor(path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * Why a disk-only save could not quiesce the guest: `no-agent` (no quiesce hook and no agent
 * in the VM's configuration, with `requireQuiesce`), `freeze-failed` (the freeze was refused
 * or timed out, with `requireQuiesce`), `timeout` (the overlay switch did not finish within
 * `quiesceTimeout` of the freeze: the guest was thawed and no snapshot taken), `thaw-failed`
 * (the thaw after the freeze failed: the guest's filesystems may still be frozen).
 */
export type QuiesceProblem = 'no-agent' | 'freeze-failed' | 'timeout' | 'thaw-failed';

/** A disk-only save could not freeze, or thaw, the guest's filesystems (see `reason`). */
export class SnapshotQuiesceError extends Error {
  override readonly name = 'SnapshotQuiesceError' as const;
  readonly snapshot: string;
  readonly reason: QuiesceProblem;
  /** Whether the thaw after the freeze succeeded (false for `thaw-failed`, true otherwise). */
  readonly thawed: boolean;
  /** Whether the snapshot was committed to the store anyway (a `thaw-failed` after the switch). */
  readonly committed: boolean;
  /** `timeout`: the `quiesceTimeout` that ran out. */
  readonly timeoutMs: number | undefined;
  constructor(
    snapshot: string,
    reason: QuiesceProblem,
    detail: { message: string; committed?: boolean; timeoutMs?: number },
    options?: { cause?: unknown },
  ) {
    super(`snapshot '${snapshot}': ${detail.message}`, options);
    this.snapshot = snapshot;
    this.reason = reason;
    this.thawed = reason !== 'thaw-failed';
    this.committed = detail.committed ?? false;
    this.timeoutMs = detail.timeoutMs;
  }
}

export const isSnapshotQuiesceError = (e: unknown): e is SnapshotQuiesceError =>
  hasName(e, 'SnapshotQuiesceError');
export const isSnapshotNotFoundError = (e: unknown): e is SnapshotNotFoundError =>
  hasName(e, 'SnapshotNotFoundError');
export const isSnapshotExistsError = (e: unknown): e is SnapshotExistsError =>
  hasName(e, 'SnapshotExistsError');
export const isSnapshotMismatchError = (e: unknown): e is SnapshotMismatchError =>
  hasName(e, 'SnapshotMismatchError');
/** Any error of the "cannot load here" hierarchy, subclasses of other packages included. */
export const isSnapshotCannotLoadError = (e: unknown): e is SnapshotCannotLoadError =>
  typeof e === 'object' &&
  e !== null &&
  typeof (e as { name?: unknown }).name === 'string' &&
  (e as { snapshotCannotLoad?: unknown }).snapshotCannotLoad === true &&
  typeof (e as { reason?: unknown }).reason === 'string';
/** A load that failed after touching the VM (`SnapshotLoadFailedError`, its subclasses too). */
export const isSnapshotLoadFailedError = (e: unknown): e is SnapshotLoadFailedError =>
  isSnapshotCannotLoadError(e) && (e as { loadFailed?: unknown }).loadFailed === true;
export const isSnapshotStateFormatError = (e: unknown): e is SnapshotStateFormatError =>
  hasName(e, 'SnapshotMismatchError') &&
  (e as { reason?: unknown }).reason === 'mapped-ram-unsupported';
export const isSnapshotIntegrityError = (e: unknown): e is SnapshotIntegrityError =>
  hasName(e, 'SnapshotIntegrityError');
export const isSnapshotQemuError = (e: unknown): e is SnapshotQemuError =>
  hasName(e, 'SnapshotQemuError');
export const isSnapshotRestoreError = (e: unknown): e is SnapshotRestoreError =>
  hasName(e, 'SnapshotRestoreError');
export const isSnapshotUnsupportedError = (e: unknown): e is SnapshotUnsupportedError =>
  hasName(e, 'SnapshotUnsupportedError');
export const isSnapshotAbortedError = (e: unknown): e is SnapshotAbortedError =>
  hasName(e, 'SnapshotAbortedError');
export const isSnapshotTimeoutError = (e: unknown): e is SnapshotTimeoutError =>
  hasName(e, 'SnapshotTimeoutError');
export const isSnapshotStoreError = (e: unknown): e is SnapshotStoreError =>
  hasName(e, 'SnapshotStoreError');

/**
 * Why `cloneSnapshot` refused or failed. Refusals happen before anything is created (no
 * directory, no QEMU):
 * - `count`: `count` is not an integer ≥ 1;
 * - `no-store`: the snapshot store directory does not exist (e.g. a VM directory that was
 *   never used);
 * - `not-external`: the snapshot has no state file to start from (internal or disk-only);
 * - `exists`: a clone directory exists already (`dirs` lists them), or two clones would get
 *   the same directory;
 * - `path-too-long`: a clone's QMP socket path would not fit a UNIX socket address.
 * After QEMU was started (every clone of the call is then stopped and its directory removed):
 * - `no-x-ignore-shared`: the snapshot's RAM is a file (`sharedRam`) and the clone's QEMU has
 *   no `x-ignore-shared` capability, so its stream cannot be loaded;
 * - `start-failed`: a clone's QEMU did not start or did not load the state (`cause`).
 * Starting a prepared clone from its `clone.json` (`startPreparedClone`):
 * - `spec`: the file is missing or not a clone specification this version reads.
 */
export type CloneErrorReason =
  | 'count'
  | 'no-store'
  | 'not-external'
  | 'exists'
  | 'path-too-long'
  | 'no-x-ignore-shared'
  | 'start-failed'
  | 'spec';

export class SnapshotCloneError extends Error {
  override readonly name = 'SnapshotCloneError' as const;
  readonly reason: CloneErrorReason;
  readonly snapshot: string | undefined;
  /** The clone directories concerned (for `exists`, the ones found). */
  readonly dirs: readonly string[];
  constructor(
    reason: CloneErrorReason,
    message: string,
    detail: { snapshot?: string; dirs?: readonly string[] } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.reason = reason;
    this.snapshot = detail.snapshot;
    this.dirs = detail.dirs ?? [];
  }
}

export const isSnapshotCloneError = (e: unknown): e is SnapshotCloneError =>
  hasName(e, 'SnapshotCloneError');
