/**
 * Errors of `@qmpkit/fake-qmp`. Each class has a literal `name`; the `is…` guards check the
 * name, so errors from another copy of the package are recognised too.
 */

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;
}

/**
 * Thrown by a command handler to answer with a QMP error (`{"error": {"class", "desc"}}`).
 * `errorClass` is one of QEMU's classes: GenericError, CommandNotFound, DeviceNotFound,
 * DeviceNotActive, KVMMissingCap.
 */
export class QmpReplyError extends Error {
  override readonly name = 'QmpReplyError' as const;
  constructor(
    readonly desc: string,
    readonly errorClass: string = 'GenericError',
    options?: ErrorOptions,
  ) {
    super(`${errorClass}: ${desc}`, options);
  }
}

/** Shorthand for `new QmpReplyError(desc, errorClass)`. */
export function qmpError(desc: string, errorClass = 'GenericError'): QmpReplyError {
  return new QmpReplyError(desc, errorClass);
}

export const isQmpReplyError = (e: unknown): e is QmpReplyError => hasName(e, 'QmpReplyError');

/** Wrong use of the fake's API or options (bad listen address, unknown QEMU version…). */
export class FakeQmpUsageError extends Error {
  override readonly name = 'FakeQmpUsageError' as const;
}

export const isFakeQmpUsageError = (e: unknown): e is FakeQmpUsageError =>
  hasName(e, 'FakeQmpUsageError');

/** One thing that went wrong against the strict expectation queue. */
export interface ExpectationFailure {
  readonly kind: 'unexpected' | 'mismatch' | 'leftover';
  /** 0-based position in the expectation queue (for leftovers and mismatches). */
  readonly index?: number;
  readonly expected?: { readonly command: string; readonly arguments?: unknown };
  readonly received?: { readonly command: string; readonly arguments?: unknown };
  readonly message: string;
}

/** Strict mode: commands that were not expected, or expected commands that never came. */
export class ExpectationError extends Error {
  override readonly name = 'ExpectationError' as const;
  constructor(
    readonly failures: readonly ExpectationFailure[],
    /** A readable, line-oriented diff of expected vs received commands. */
    readonly diff: string,
  ) {
    super(`fake QMP expectations not met (${failures.length} problem(s)):\n${diff}`);
  }
}

export const isExpectationError = (e: unknown): e is ExpectationError =>
  hasName(e, 'ExpectationError');

/** Replay: the client did not send what the recording holds at this point. */
export interface ReplayDivergence {
  /** 0-based index of the recorded command that was expected. */
  readonly index: number;
  /** The recorded command line (absent when the recording had ended). */
  readonly expected?: string;
  /** What the client sent. */
  readonly got: string;
  readonly message: string;
}

export class ReplayDivergenceError extends Error {
  override readonly name = 'ReplayDivergenceError' as const;
  constructor(
    readonly divergences: readonly ReplayDivergence[],
    /** Recorded commands never sent by the client. */
    readonly leftover: number,
  ) {
    const lines = divergences.map((d) => `  - ${d.message}`);
    if (leftover > 0) lines.push(`  - ${leftover} recorded command(s) were never sent`);
    super(`replay diverged from the recording:\n${lines.join('\n')}`);
  }
}

export const isReplayDivergenceError = (e: unknown): e is ReplayDivergenceError =>
  hasName(e, 'ReplayDivergenceError');

/** A conversation (or libvirt `.replies`) file that cannot be read. */
export class ConversationFileError extends Error {
  override readonly name = 'ConversationFileError' as const;
  constructor(
    readonly file: string,
    /** 1-based line, when the problem has one. */
    readonly line: number | undefined,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${reason}`, options);
  }
}

export const isConversationFileError = (e: unknown): e is ConversationFileError =>
  hasName(e, 'ConversationFileError');

/** A file the model asked for is missing (a bug of the model: it checks `openError` first). */
export class StorageError extends Error {
  override readonly name = 'StorageError' as const;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

export const isStorageError = (e: unknown): e is StorageError => hasName(e, 'StorageError');
