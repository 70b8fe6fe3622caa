/**
 * Error classes of `@qmpkit/machine`. Each has a literal `name`, the fields a caller can act
 * on, and `cause` where there is one; the guards check `name`, so errors from a second copy
 * of the package are recognised too.
 */

/** Why a child process with a QMP monitor (QEMU, `qemu-storage-daemon`) did not come up. */
export type ProcessLaunchFailure =
  /** The binary does not exist (or is not on `PATH`). */
  | 'not-found'
  /** `spawn` failed for another reason (permissions, resources). */
  | 'spawn-failed'
  /** It exited before the QMP session was ready (bad option, unknown device, refused image, …). */
  | 'exited'
  /** No QMP greeting in time; the process was killed. */
  | 'timeout'
  /** The QMP handshake failed although the process was still running; it was killed. */
  | 'handshake';

/** What a launch failure knows about the process: its command and how it ended. */
export interface ProcessLaunchFields {
  /** The full command, binary first. */
  readonly argv: readonly string[];
  readonly exitCode?: number | null;
  readonly signal?: NodeJS.Signals | null;
  /** The tail of its standard error. */
  readonly stderr?: string;
}

/**
 * The shape both launch errors share (`QemuLaunchError`, `StorageDaemonError`): `reason`,
 * `argv`, how the process ended and the tail of its stderr, which the message repeats under
 * `<program>'s stderr:`. Not thrown itself; a caller can catch either subclass with
 * `isProcessLaunchError` (checks `name`, like every guard here).
 */
export abstract class ProcessLaunchError<R extends string = string> extends Error {
  abstract override readonly name: 'QemuLaunchError' | 'StorageDaemonError';
  /** The program's name in the message (`<program>'s stderr:`). */
  protected static readonly program: string = 'the process';
  readonly reason: R;
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;

  constructor(
    reason: R,
    detail: string,
    fields: ProcessLaunchFields,
    options?: { cause?: unknown },
  ) {
    const stderr = fields.stderr ?? '';
    const program = new.target.program;
    const tail = stderr.trim() === '' ? '' : `\n${program}'s stderr:\n${indent(stderr.trimEnd())}`;
    super(`${detail}${tail}`, options);
    this.reason = reason;
    this.argv = fields.argv;
    this.exitCode = fields.exitCode ?? null;
    this.signal = fields.signal ?? null;
    this.stderr = stderr;
  }
}

const PROCESS_LAUNCH_ERRORS: ReadonlySet<string> = new Set([
  'QemuLaunchError',
  'StorageDaemonError',
]);

export function isProcessLaunchError(value: unknown): value is ProcessLaunchError {
  return value instanceof Error && PROCESS_LAUNCH_ERRORS.has(value.name);
}

/** Why QEMU did not come up. */
export type LaunchFailure =
  | ProcessLaunchFailure
  /** A cold-plug step (`assemble: 'qmp'`) was refused; the process was killed. */
  | 'assembly';

/**
 * QEMU could not be started. `argv` is the full command (binary first), `stderr` the tail of
 * QEMU's standard error (where it explains a refused option), `exitCode`/`signal` how it
 * ended when it did.
 */
export class QemuLaunchError extends ProcessLaunchError<LaunchFailure> {
  protected static override readonly program = 'QEMU';
  override readonly name = 'QemuLaunchError' as const;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

export function isQemuLaunchError(value: unknown): value is QemuLaunchError {
  return value instanceof Error && value.name === 'QemuLaunchError';
}

/** Why a run directory cannot be used. */
export type RunDirProblem = 'create-failed' | 'not-a-directory' | 'not-writable' | 'insecure-mode';

/**
 * The run directory (private files of one VM: state file, sockets of stream sinks, logs) is
 * unusable: it cannot be created, is not a directory, cannot be written, or is open to
 * other users (it must be mode 0700).
 */
export class RunDirError extends Error {
  override readonly name = 'RunDirError' as const;
  readonly path: string;
  readonly problem: RunDirProblem;

  constructor(path: string, problem: RunDirProblem, detail: string, options?: { cause?: unknown }) {
    super(`run directory ${path}: ${detail}`, options);
    this.path = path;
    this.problem = problem;
  }
}

export function isRunDirError(value: unknown): value is RunDirError {
  return value instanceof Error && value.name === 'RunDirError';
}

/** What is wrong with a state file. */
export type StateFileProblem =
  /** It could not be read (missing, permissions). */
  | 'unreadable'
  /** It is not JSON (e.g. truncated). */
  | 'not-json'
  /** It is JSON but not a `qmpkit-machine/state` document of a version we read. */
  | 'format'
  /** The stored VM configuration is malformed or invalid. */
  | 'config'
  /** Writing a new version failed; the previous file is untouched. */
  | 'write-failed';

/**
 * A state file cannot be read or written. `issues` name each problem by JSON path
 * (`$.runtime.pid: expected an integer or null`). Nothing was overwritten: `backup` is the
 * previous good version (`<file>.bak`) when one exists and reads cleanly.
 */
export class StateFileError extends Error {
  override readonly name = 'StateFileError' as const;
  readonly path: string;
  readonly problem: StateFileProblem;
  readonly issues: readonly string[];
  readonly backup: string | undefined;

  constructor(
    path: string,
    problem: StateFileProblem,
    issues: readonly string[],
    options?: { cause?: unknown; backup?: string | undefined },
  ) {
    const shown = issues.slice(0, 10).map((i) => `  - ${i}`);
    if (issues.length > shown.length) shown.push(`  - … and ${issues.length - shown.length} more`);
    const backup =
      options?.backup === undefined ? '' : `\nthe previous good state is kept in ${options.backup}`;
    super(
      `state file ${path}: ${DESCRIPTIONS[problem]}${shown.length > 0 ? `:\n${shown.join('\n')}` : ''}${backup}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.path = path;
    this.problem = problem;
    this.issues = issues;
    this.backup = options?.backup;
  }
}

const DESCRIPTIONS: Record<StateFileProblem, string> = {
  unreadable: 'cannot be read',
  'not-json': 'is not valid JSON (truncated or corrupt)',
  format: 'is not a qmpkit-machine/state document this version reads',
  config: 'holds a VM configuration that does not read back',
  'write-failed': 'could not be written (the previous version is untouched)',
};

export function isStateFileError(value: unknown): value is StateFileError {
  return value instanceof Error && value.name === 'StateFileError';
}

/**
 * A hot-plug or unplug step failed. `completed` are the steps QEMU carried out before;
 * for `plug`, `rolledBack` says whether undoing them worked (`undoErrors` otherwise) and
 * the model is unchanged; for `unplug`, the model drops what was removed before the failure.
 */
export class MachinePlugError extends Error {
  override readonly name = 'MachinePlugError' as const;
  readonly operation: 'plug' | 'unplug';
  readonly step: { readonly execute: string; readonly arguments: unknown };
  readonly completed: readonly { readonly execute: string; readonly arguments: unknown }[];
  readonly rolledBack: boolean;
  readonly undoErrors: readonly unknown[];

  constructor(
    operation: 'plug' | 'unplug',
    step: { readonly execute: string; readonly arguments: unknown },
    fields: {
      readonly completed: readonly { readonly execute: string; readonly arguments: unknown }[];
      readonly rolledBack: boolean;
      readonly undoErrors?: readonly unknown[];
    },
    options: { cause: unknown },
  ) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    const after =
      operation === 'plug'
        ? fields.rolledBack
          ? `; the ${fields.completed.length} step(s) before it were undone`
          : `; undoing the ${fields.completed.length} step(s) before it failed too`
        : `; ${fields.completed.length} step(s) before it were carried out`;
    super(
      `${operation}: ${step.execute} ${JSON.stringify(step.arguments)} failed: ${reason}${after}`,
      {
        cause: options.cause,
      },
    );
    this.operation = operation;
    this.step = step;
    this.completed = fields.completed;
    this.rolledBack = fields.rolledBack;
    this.undoErrors = fields.undoErrors ?? [];
  }
}

export function isMachinePlugError(value: unknown): value is MachinePlugError {
  return value instanceof Error && value.name === 'MachinePlugError';
}

/** An operation needs a running QEMU, but it has exited (or was stopped). */
export class MachineNotRunningError extends Error {
  override readonly name = 'MachineNotRunningError' as const;
  readonly operation: string;

  constructor(operation: string) {
    super(`${operation}: QEMU is not running`);
    this.operation = operation;
  }
}

export function isMachineNotRunningError(value: unknown): value is MachineNotRunningError {
  return value instanceof Error && value.name === 'MachineNotRunningError';
}

/** A launch option does not fit the configuration (e.g. a console naming no chardev). */
export class MachineOptionsError extends Error {
  override readonly name = 'MachineOptionsError' as const;
  readonly option: string;

  constructor(option: string, detail: string) {
    super(`option ${option}: ${detail}`);
    this.option = option;
  }
}

export function isMachineOptionsError(value: unknown): value is MachineOptionsError {
  return value instanceof Error && value.name === 'MachineOptionsError';
}

/** `expect` saw no match in time. `unread` is the tail of what the console holds. */
export class ConsoleTimeoutError extends Error {
  override readonly name = 'ConsoleTimeoutError' as const;
  readonly console: string;
  readonly pattern: string;
  readonly timeout: number;
  readonly unread: string;

  constructor(console: string, pattern: string, timeout: number, unread: string) {
    const tail = unread.length > 200 ? `…${unread.slice(-200)}` : unread;
    super(
      `console ${console}: no match for ${pattern} within ${timeout} ms; unread: ${JSON.stringify(tail)}`,
    );
    this.console = console;
    this.pattern = pattern;
    this.timeout = timeout;
    this.unread = unread;
  }
}

export function isConsoleTimeoutError(value: unknown): value is ConsoleTimeoutError {
  return value instanceof Error && value.name === 'ConsoleTimeoutError';
}

/** The console's connection ended (QEMU exited or was restarted) before a match. */
export class ConsoleClosedError extends Error {
  override readonly name = 'ConsoleClosedError' as const;
  readonly console: string;
  readonly pattern: string | undefined;

  constructor(console: string, pattern?: string) {
    super(
      pattern === undefined
        ? `console ${console} is closed`
        : `console ${console} closed before a match for ${pattern}`,
    );
    this.console = console;
    this.pattern = pattern;
  }
}

export function isConsoleClosedError(value: unknown): value is ConsoleClosedError {
  return value instanceof Error && value.name === 'ConsoleClosedError';
}

/**
 * Another live manager holds the run directory's lock: one process drives one VM directory,
 * so ending "every QEMU of this run directory" can never hit a VM someone else drives.
 * `holderPid` is that process (stop it there, or relaunch with `force: true` to take over).
 */
export class RunDirLockedError extends Error {
  override readonly name = 'RunDirLockedError' as const;
  readonly runDir: string;
  readonly lockFile: string;
  readonly holderPid: number;
  /** The holder's start time (`/proc/<pid>/stat` field 22), so a reused pid is told apart. */
  readonly holderStartTime: number | null;

  constructor(fields: {
    readonly runDir: string;
    readonly lockFile: string;
    readonly holderPid: number;
    readonly holderStartTime: number | null;
  }) {
    const self = fields.holderPid === process.pid ? ' (this process: another Machine)' : '';
    super(
      `run directory ${fields.runDir} is in use by the manager process ${fields.holderPid}${self} (lock ${fields.lockFile}); stop the machine there, or pass force: true to take it over`,
    );
    this.runDir = fields.runDir;
    this.lockFile = fields.lockFile;
    this.holderPid = fields.holderPid;
    this.holderStartTime = fields.holderStartTime;
  }
}

export function isRunDirLockedError(value: unknown): value is RunDirLockedError {
  return value instanceof Error && value.name === 'RunDirLockedError';
}

/** A leftover QEMU of a run directory did not go away after SIGKILL (stuck in the kernel). */
export class LeftoverQemuError extends Error {
  override readonly name = 'LeftoverQemuError' as const;
  readonly runDir: string;
  readonly pid: number;

  constructor(runDir: string, pid: number, waitedMs: number) {
    super(
      `the leftover QEMU (pid ${pid}) of run directory ${runDir} did not exit within ${waitedMs} ms of SIGKILL (stuck in the kernel?); it still holds the VM's images`,
    );
    this.runDir = runDir;
    this.pid = pid;
  }
}

export function isLeftoverQemuError(value: unknown): value is LeftoverQemuError {
  return value instanceof Error && value.name === 'LeftoverQemuError';
}

/**
 * `qemu-img` failed. `args` is its argument array (it never runs through a shell),
 * `exitCode`/`signal` how it ended, `stderr` what it said.
 */
export class QemuImgError extends Error {
  override readonly name = 'QemuImgError' as const;
  readonly command: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;

  constructor(
    fields: {
      readonly command: string;
      readonly args: readonly string[];
      readonly exitCode: number | null;
      readonly signal: NodeJS.Signals | null;
      readonly stderr: string;
    },
    options?: { cause?: unknown },
  ) {
    const how =
      fields.signal !== null
        ? `signal ${fields.signal}`
        : fields.exitCode !== null
          ? `exit code ${fields.exitCode}`
          : 'could not start';
    const said = fields.stderr.trim();
    super(
      `${fields.command} ${fields.args.join(' ')} failed (${how})${said ? `: ${said}` : ''}`,
      options,
    );
    this.command = fields.command;
    this.args = fields.args;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stderr = fields.stderr;
  }
}

export function isQemuImgError(value: unknown): value is QemuImgError {
  return value instanceof Error && value.name === 'QemuImgError';
}

/** How a migration ended without completing. */
export type MigrationFailure =
  /** QEMU reported `failed` (`desc` is its `error-desc`). */
  | 'failed'
  /** QEMU reported `cancelled`. */
  | 'cancelled'
  /** QEMU exited during the migration (`exitCode`, `signal`, `stderr`). */
  | 'exited'
  /** Not completed within the deadline (outgoing: cancelled; incoming: QEMU killed). */
  | 'timeout'
  /** Aborted through the `AbortSignal` (outgoing: cancelled). */
  | 'aborted';

/**
 * A migration did not complete. For an incoming one, QEMU 7.2 reports the reason only on
 * stderr and exits: `exitCode`, `signal` and `stderr` say how it ended.
 */
export class MigrationError extends Error {
  override readonly name = 'MigrationError' as const;
  readonly direction: 'outgoing' | 'incoming';
  readonly reason: MigrationFailure;
  readonly desc: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;

  constructor(
    direction: 'outgoing' | 'incoming',
    reason: MigrationFailure,
    desc: string,
    fields: {
      readonly exitCode?: number | null;
      readonly signal?: string | null;
      readonly stderr?: string;
    } = {},
    options?: { cause?: unknown },
  ) {
    const stderr = fields.stderr ?? '';
    const tail = stderr.trim() === '' ? '' : `\nQEMU's stderr:\n${indent(stderr.trimEnd())}`;
    super(`${direction} migration ${reason}: ${desc}${tail}`, options);
    this.direction = direction;
    this.reason = reason;
    this.desc = desc;
    this.exitCode = fields.exitCode ?? null;
    this.signal = fields.signal ?? null;
    this.stderr = stderr;
  }
}

export function isMigrationError(value: unknown): value is MigrationError {
  return value instanceof Error && value.name === 'MigrationError';
}

/** Why a QEMU binary cannot be used. */
export type QemuBinaryProblem =
  /** The executable does not exist. */
  | 'not-found'
  /** It exists but is not QEMU (`--version` failed or printed something else). */
  | 'not-qemu'
  /** An unpacked root (`<root>/usr/bin/qemu-system-x86_64`) lacks its module dir. */
  | 'missing-module-dir'
  /** An unpacked root lacks its data dir (`usr/share/qemu`). */
  | 'missing-data-dir'
  /** A release (`10.0`) was asked for that the cache does not hold yet. */
  | 'not-fetched'
  /** The cache holds another release than its name says. */
  | 'version-mismatch'
  /** No download is known for that release. */
  | 'unknown-release';

/**
 * A QEMU binary (`--qemu 10.0`, `--qemu /path/to/qemu-system-x86_64`) cannot be used.
 * Nothing was started. `spec` is what the caller passed.
 */
export class QemuBinaryError extends Error {
  override readonly name = 'QemuBinaryError' as const;
  readonly problem: QemuBinaryProblem;
  readonly spec: string;
  /** The version found, when one was (for `version-mismatch`). */
  readonly version: string | undefined;

  constructor(
    problem: QemuBinaryProblem,
    spec: string,
    init: { detail: string; version?: string; cause?: unknown },
  ) {
    super(
      `QEMU binary ${JSON.stringify(spec)}: ${init.detail}`,
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.problem = problem;
    this.spec = spec;
    this.version = init.version;
  }
}

export function isQemuBinaryError(value: unknown): value is QemuBinaryError {
  return value instanceof Error && value.name === 'QemuBinaryError';
}

/**
 * The machine type a VM is pinned to (or its configuration names) is not one the QEMU binary
 * has, e.g. a state pinned to `pc-i440fx-7.2` relaunched on a QEMU without that type.
 * Nothing was started. `known` lists the types the binary has.
 */
export class MachineTypeError extends Error {
  override readonly name = 'MachineTypeError' as const;
  readonly machineType: string;
  readonly binary: string;
  readonly binaryVersion: string;
  readonly known: readonly string[];

  constructor(fields: {
    readonly machineType: string;
    readonly binary: string;
    readonly binaryVersion: string;
    readonly known: readonly string[];
    readonly pinned: boolean;
  }) {
    super(
      `QEMU ${fields.binaryVersion} (${fields.binary}) has no machine type '${fields.machineType}'${fields.pinned ? ' (the type this VM was pinned to at its first launch)' : ''}; run the VM on a QEMU that has it (\`${fields.binary} -machine help\` lists this one's)`,
    );
    this.machineType = fields.machineType;
    this.binary = fields.binary;
    this.binaryVersion = fields.binaryVersion;
    this.known = fields.known;
  }
}

export function isMachineTypeError(value: unknown): value is MachineTypeError {
  return value instanceof Error && value.name === 'MachineTypeError';
}

/** Why a live migration (`migrate()`) did not move the VM. */
export type LiveMigrationFailure =
  /** The source is not a running machine (stopped, exited, or its QEMU is gone). */
  | 'source-not-running'
  /** A migration of this source is already under way (ours or one started through QMP). */
  | 'busy'
  /** The target configuration differs from the source's in what the guest sees (`differences`). */
  | 'config-mismatch'
  /** The target QEMU lacks the source's (pinned) machine type; `cause` is a `MachineTypeError`. */
  | 'machine-type'
  /** The options cannot work (e.g. `disks: 'copy'` without a place for the images); nothing started. */
  | 'invalid-options'
  /** Copying a local disk to the target failed (the mirror's error, e.g. no space left). */
  | 'disk-copy'
  /**
   * A disk the target exports over NBD differs in size from the source's (`differences`);
   * refused before any mirror started, so nothing was written to the target's images.
   */
  | 'disk-size-mismatch'
  /** The target QEMU did not start; `cause` is the launch error. */
  | 'target-launch'
  /** A QMP command of the set-up or the hand-over was refused (`cause`). */
  | 'command-failed'
  /** QEMU reported `failed` (the target refused the stream, nobody listens at the address, …). */
  | 'failed'
  /** The target QEMU exited before it ran the guest (`exitCode`, `signal`, `stderr`). */
  | 'target-exited'
  /** The source QEMU exited during the migration. */
  | 'source-exited'
  /** Aborted through the `AbortSignal` or `cancel()`. */
  | 'aborted'
  /** A phase passed its hard deadline (`phase`). */
  | 'timeout'
  /** Remaining RAM stopped shrinking and the controller ran out of means (`cause` has the numbers). */
  | 'does-not-converge'
  /** `cancel()` on a migration that has already ended. */
  | 'not-active'
  /** A migration address that is not `unix:PATH` or `tcp:HOST:PORT`. */
  | 'bad-address'
  /** TLS credentials missing or refused (the handshake itself failing is `failed`). */
  | 'tls'
  /** Post-copy asked for but impossible here (no `postcopy-ram`, no userfaultfd: `desc` says why). */
  | 'postcopy-unavailable'
  /** The link broke after the switch to post-copy: the target holds the newest state, the source stays paused. */
  | 'postcopy-failed'
  /**
   * The link broke during post-copy and could not be recovered (or a relaunch met such a
   * record): both QEMUs are alive and paused, the target holding the guest, the source the
   * pages not yet sent; neither may be killed. `recoverPostcopy()` tries again.
   */
  | 'postcopy-paused'
  /** `cancel()` after the switch to post-copy: QEMU cannot cancel it (the target runs the guest). */
  | 'cannot-cancel'
  /** Something this QEMU cannot do safely (e.g. a remote target without `return-path`). */
  | 'unsupported'
  /** `relaunch` of a source whose guest may already run on the target (`peerStateFile`). */
  | 'moved'
  /** `relaunch` of a target that never received the guest (the source is the VM). */
  | 'incomplete-target';

/**
 * A live migration did not move the VM. Unless `reason` is `moved`, the source is left as it
 * was (`sourceRunning` says whether its guest runs) and the target QEMU is gone with its files.
 * `phase` is where it stopped; `stderr`/`exitCode`/`signal` are the target's when it exited.
 */
export class LiveMigrationError extends Error {
  override readonly name = 'LiveMigrationError' as const;
  readonly reason: LiveMigrationFailure;
  readonly phase: string;
  readonly desc: string;
  readonly sourceRunning: boolean | null;
  readonly differences: readonly string[];
  readonly peerStateFile: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;

  constructor(
    reason: LiveMigrationFailure,
    phase: string,
    desc: string,
    fields: {
      readonly sourceRunning?: boolean | null;
      readonly differences?: readonly string[];
      readonly peerStateFile?: string | null;
      readonly exitCode?: number | null;
      readonly signal?: string | null;
      readonly stderr?: string;
    } = {},
    options?: { cause?: unknown },
  ) {
    const stderr = fields.stderr ?? '';
    const diffs = fields.differences ?? [];
    const list = diffs.length === 0 ? '' : `\n${indent(diffs.join('\n'))}`;
    const tail = stderr.trim() === '' ? '' : `\ntarget QEMU's stderr:\n${indent(stderr.trimEnd())}`;
    super(`live migration ${reason} (phase ${phase}): ${desc}${list}${tail}`, options);
    this.reason = reason;
    this.phase = phase;
    this.desc = desc;
    this.sourceRunning = fields.sourceRunning ?? null;
    this.differences = diffs;
    this.peerStateFile = fields.peerStateFile ?? null;
    this.exitCode = fields.exitCode ?? null;
    this.signal = fields.signal ?? null;
    this.stderr = stderr;
  }

  /** A copy with what the roll-back found out about the source. */
  withSource(sourceRunning: boolean | null): LiveMigrationError {
    return new LiveMigrationError(
      this.reason,
      this.phase,
      this.desc,
      {
        sourceRunning,
        differences: this.differences,
        peerStateFile: this.peerStateFile,
        exitCode: this.exitCode,
        signal: this.signal,
        stderr: this.stderr,
      },
      { cause: this.cause },
    );
  }
}

export function isLiveMigrationError(value: unknown): value is LiveMigrationError {
  return value instanceof Error && value.name === 'LiveMigrationError';
}

/** Where a block job went wrong. */
export type BlockJobFailure =
  /** QEMU refused to start the job (or the `transaction` that starts it). */
  | 'start'
  /** The job ran and failed; `desc` is QEMU's message read from `query-jobs`. */
  | 'run'
  /** A control command (`action`: pause, resume, cancel, complete, …) was refused. */
  | 'control'
  /** The QMP connection ended before the job concluded (QEMU exited): outcome unknown. */
  | 'lost';

/**
 * A block job (`stream`, `commit`, `mirror`, `backup`) failed. `desc` is QEMU's own message
 * (e.g. `Input/output error`); `cause` is the refused command's `QmpCommandError` where
 * there is one.
 */
export class BlockJobError extends Error {
  override readonly name = 'BlockJobError' as const;
  readonly phase: BlockJobFailure;
  readonly jobId: string;
  readonly type: string;
  readonly action: string | undefined;
  readonly desc: string;

  constructor(
    fields: {
      readonly phase: BlockJobFailure;
      readonly jobId: string;
      readonly type: string;
      readonly desc: string;
      readonly action?: string;
    },
    options?: { cause?: unknown },
  ) {
    const what =
      fields.phase === 'start'
        ? `could not start ${fields.type} job '${fields.jobId}'`
        : fields.phase === 'control'
          ? `${fields.action ?? 'control'} of ${fields.type} job '${fields.jobId}' refused`
          : fields.phase === 'lost'
            ? `lost ${fields.type} job '${fields.jobId}'`
            : `${fields.type} job '${fields.jobId}' failed`;
    super(`${what}: ${fields.desc}`, options);
    this.phase = fields.phase;
    this.jobId = fields.jobId;
    this.type = fields.type;
    this.action = fields.action;
    this.desc = fields.desc;
  }
}

export function isBlockJobError(value: unknown): value is BlockJobError {
  return value instanceof Error && value.name === 'BlockJobError';
}

/** Why a `qemu-storage-daemon` could not be started. */
export type StorageDaemonFailure =
  | ProcessLaunchFailure
  /** The file is not a qemu-storage-daemon (`--version` says otherwise) or cannot be executed. */
  | 'bad-binary';

/**
 * A `qemu-storage-daemon` could not be started. `argv` is the full command, `stderr` the tail
 * of its standard error (where it explains a refused `--blockdev` or `--export`), `exitCode`
 * and `signal` how it ended. Nothing of it is left running.
 */
export class StorageDaemonError extends ProcessLaunchError<StorageDaemonFailure> {
  protected static override readonly program = 'qemu-storage-daemon';
  override readonly name = 'StorageDaemonError' as const;
}

export function isStorageDaemonError(value: unknown): value is StorageDaemonError {
  return value instanceof Error && value.name === 'StorageDaemonError';
}

/** A `qemu-storage-daemon` looked at while picking one for a VM's QEMU. */
export interface StorageDaemonCandidate {
  /** The executable. */
  readonly path: string;
  /** Where it was looked for: beside the VM's binary, the cache's qemu-utils tree, `PATH`. */
  readonly where: 'beside-binary' | 'cache' | 'path';
  /** Its `--version`, or `undefined` when it did not run as a daemon (`problem` says why). */
  readonly version: string | undefined;
  readonly problem?: string;
}

/**
 * No `qemu-storage-daemon` of the QEMU release that runs a VM was found, so nothing opened its
 * images. `wanted` is that QEMU's version (`qemu` its binary, as the state file records it),
 * `candidates` every daemon looked at with its version. Pass one explicitly (`qemu` of
 * `chainJobOnStoppedVm`, `--storage-daemon` of `qmpkit block`), or fetch the release's tools.
 */
export class StorageDaemonVersionError extends Error {
  override readonly name = 'StorageDaemonVersionError' as const;
  readonly wanted: string;
  readonly qemu: string | undefined;
  readonly candidates: readonly StorageDaemonCandidate[];

  constructor(fields: {
    readonly wanted: string;
    readonly qemu: string | undefined;
    readonly candidates: readonly StorageDaemonCandidate[];
    /** How to get one, e.g. the fetch command for a release the project can download. */
    readonly hint?: string;
  }) {
    const [major, minor] = fields.wanted.split('.');
    const found =
      fields.candidates.length === 0
        ? 'none was found'
        : `found:\n${indent(
            fields.candidates
              .map(
                (c) =>
                  `${c.path} (${c.where}): ${c.version === undefined ? (c.problem ?? 'not a daemon') : `version ${c.version}`}`,
              )
              .join('\n'),
          )}`;
    super(
      `no qemu-storage-daemon of QEMU ${major}.${minor} (the VM last ran on QEMU ${fields.wanted}${fields.qemu === undefined ? '' : ` at ${fields.qemu}`}); ${found}\n${fields.hint === undefined ? '' : `${fields.hint}, or `}pass the daemon to use (\`--storage-daemon <path>\` in the CLI, \`qemu\` in the API)`,
    );
    this.wanted = fields.wanted;
    this.qemu = fields.qemu;
    this.candidates = fields.candidates;
  }
}

export function isStorageDaemonVersionError(value: unknown): value is StorageDaemonVersionError {
  return value instanceof Error && value.name === 'StorageDaemonVersionError';
}

/** Why a chain job (`commit`/`stream`/`mirror` of one disk) was refused or failed. */
export type ChainJobProblem =
  /** No disk with that id (or the VM has none). */
  | 'unknown-disk'
  /** The VM has several disks and none was named. */
  | 'ambiguous-disk'
  /** A `top`/`base` that is not a layer of the disk's chain. */
  | 'unknown-node'
  /** The chain has one layer: nothing to commit or stream. */
  | 'single-layer'
  /** Contradicting options (a base above the top, a mirror without target). */
  | 'bad-request'
  /** The storage daemon did not end cleanly after the job (state file left unchanged). */
  | 'daemon-failed';

/**
 * A chain job was refused before anything ran (`unknown-disk`, `unknown-node`,
 * `single-layer`, …) or its daemon failed; `disks` lists the VM's disks, `chain` the disk's
 * layers (base first) so the caller can pick valid names.
 */
export class ChainJobError extends Error {
  override readonly name = 'ChainJobError' as const;
  readonly problem: ChainJobProblem;
  readonly disks: readonly string[];
  readonly chain: readonly string[];

  constructor(
    problem: ChainJobProblem,
    detail: string,
    fields: { readonly disks: readonly string[]; readonly chain?: readonly string[] },
    options?: { cause?: unknown },
  ) {
    super(detail, options);
    this.problem = problem;
    this.disks = fields.disks;
    this.chain = fields.chain ?? [];
  }
}

export function isChainJobError(value: unknown): value is ChainJobError {
  return value instanceof Error && value.name === 'ChainJobError';
}
