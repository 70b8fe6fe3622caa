/**
 * Errors thrown by @qmpkit/testguest. Each has a literal `name`; the `is…` guards check the
 * name rather than `instanceof`, so two copies of the package in one tree still agree.
 */

/** The tiny assembler was asked for something it cannot encode (a bug in the guest program). */
export class AssemblerError extends Error {
  override readonly name = 'AssemblerError' as const;
}

/** An option passed to a builder is out of range or of the wrong kind. */
export class GuestOptionsError extends Error {
  override readonly name = 'GuestOptionsError' as const;
  /** The option's name, e.g. `intervalMs`. */
  readonly option: string;
  /** The rejected value. */
  readonly value: unknown;

  constructor(option: string, value: unknown, reason: string) {
    super(`invalid ${option} (${String(value)}): ${reason}`);
    this.option = option;
    this.value = value;
  }
}

/** A byte buffer is too short or not a test-guest image. */
export class GuestImageError extends Error {
  override readonly name = 'GuestImageError' as const;
}

/** `qemu-img` could not be started or exited unsuccessfully. */
export class QemuImgError extends Error {
  override readonly name = 'QemuImgError' as const;
  /** The executable that was run. */
  readonly command: string;
  /** Its argument array, exactly as passed to `spawn`. */
  readonly args: readonly string[];
  /** Exit code, or `null` when it was killed by a signal or never started. */
  readonly exitCode: number | null;
  /** The signal that ended it, if any. */
  readonly signal: NodeJS.Signals | null;
  /** Everything it wrote to stderr (trimmed). */
  readonly stderr: string;

  constructor(
    init: {
      command: string;
      args: readonly string[];
      exitCode: number | null;
      signal: NodeJS.Signals | null;
      stderr: string;
    },
    options?: { cause?: unknown },
  ) {
    const how =
      init.exitCode !== null
        ? `exited with code ${init.exitCode}`
        : init.signal !== null
          ? `was killed by ${init.signal}`
          : 'could not be started';
    super(
      `${init.command} ${init.args[0] ?? ''} ${how}${init.stderr ? `: ${init.stderr}` : ''}`,
      options,
    );
    this.command = init.command;
    this.args = init.args;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stderr = init.stderr;
  }
}

/** A guest started with `startGuest` did not print what was waited for. */
export class GuestProcessError extends Error {
  override readonly name = 'GuestProcessError' as const;
  /** `timeout`: nothing matched in time; `exited`: QEMU exited first. */
  readonly reason: 'timeout' | 'exited';
  /** Pid of the QEMU process. */
  readonly pid: number;
  /** The last few serial lines received. */
  readonly lastLines: readonly string[];
  /** QEMU's stderr so far. */
  readonly stderr: string;
  /** How QEMU exited, if it has. */
  readonly exit: { readonly code: number | null; readonly signal: string | null } | undefined;

  constructor(init: {
    reason: 'timeout' | 'exited';
    message: string;
    pid: number;
    lastLines: readonly string[];
    stderr: string;
    exit: { readonly code: number | null; readonly signal: string | null } | undefined;
  }) {
    const tail = init.lastLines.length ? `; last lines: ${JSON.stringify(init.lastLines)}` : '';
    const err = init.stderr ? `; stderr: ${init.stderr.slice(-500)}` : '';
    super(`guest pid ${init.pid}: ${init.message}${tail}${err}`);
    this.reason = init.reason;
    this.pid = init.pid;
    this.lastLines = init.lastLines;
    this.stderr = init.stderr;
    this.exit = init.exit;
  }
}

function hasName(error: unknown, name: string): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === name;
}

export function isAssemblerError(error: unknown): error is AssemblerError {
  return hasName(error, 'AssemblerError');
}
export function isGuestOptionsError(error: unknown): error is GuestOptionsError {
  return hasName(error, 'GuestOptionsError');
}
export function isGuestImageError(error: unknown): error is GuestImageError {
  return hasName(error, 'GuestImageError');
}
export function isQemuImgError(error: unknown): error is QemuImgError {
  return hasName(error, 'QemuImgError');
}
export function isGuestProcessError(error: unknown): error is GuestProcessError {
  return hasName(error, 'GuestProcessError');
}

/** What failed while building the Linux test guest. */
export type LinuxGuestBuildStep =
  /** Downloading or unpacking the Debian packages. */
  | 'download'
  /** A package did not contain what the guest needs (kernel image, qemu-ga, busybox). */
  | 'contents'
  /** Kernel modules: one missing or a dependency cycle. */
  | 'modules'
  /** A binary could not be read as ELF. */
  | 'elf'
  /** A shared library qemu-ga needs is in none of the unpacked packages. */
  | 'libraries'
  /** Extracting the uncompressed kernel from vmlinuz. */
  | 'kernel';

/** Building the Linux test guest failed; `step` says where. Nothing is left in the cache. */
export class LinuxGuestBuildError extends Error {
  override readonly name = 'LinuxGuestBuildError' as const;
  readonly step: LinuxGuestBuildStep;

  constructor(step: LinuxGuestBuildStep, message: string, options?: { cause?: unknown }) {
    super(`linux guest (${step}): ${message}`, options);
    this.step = step;
  }
}

export function isLinuxGuestBuildError(error: unknown): error is LinuxGuestBuildError {
  return hasName(error, 'LinuxGuestBuildError');
}

/** A Linux guest started with `startLinuxGuest` did not do what was waited for. */
export class LinuxGuestError extends Error {
  override readonly name = 'LinuxGuestError' as const;
  /** `timeout`: not in time; `exited`: QEMU exited first; `agent`: the agent answered wrongly. */
  readonly reason: 'timeout' | 'exited' | 'agent';
  /** The last serial lines and QEMU's stderr, for the report. */
  readonly lastLines: readonly string[];
  readonly stderr: string;

  constructor(
    reason: 'timeout' | 'exited' | 'agent',
    message: string,
    context: { lastLines: readonly string[]; stderr: string },
    options?: { cause?: unknown },
  ) {
    const tail = context.lastLines.length
      ? `; last lines: ${JSON.stringify(context.lastLines)}`
      : '';
    const err = context.stderr ? `; stderr: ${context.stderr.slice(-500)}` : '';
    super(`${message}${tail}${err}`, options);
    this.reason = reason;
    this.lastLines = context.lastLines;
    this.stderr = context.stderr;
  }
}

export function isLinuxGuestError(error: unknown): error is LinuxGuestError {
  return hasName(error, 'LinuxGuestError');
}
