/**
 * Error classes of `@qmpkit/cli`. Each has a literal `name` and the exit code the CLI uses
 * for it; guards check `name`, so errors from another copy of the package are recognised.
 *
 * Exit codes: 0 success; 1 QEMU answered with an error (or a job failed); 2 the request never
 * reached QEMU — usage errors, invalid arguments (checked against the live schema), an
 * unreachable address, an unreadable schema input.
 */

interface Named {
  readonly name?: unknown;
}

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as Named).name === name;
}

/** Wrong command line: unknown option, missing operand, malformed `key=value`. Exit 2. */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError' as const;
  readonly exitCode = 2 as const;
}

/** The address could not be reached (refused, no socket, no greeting in time). Exit 2. */
export class CliConnectError extends Error {
  override readonly name = 'CliConnectError' as const;
  readonly exitCode = 2 as const;
  /** The address as given. */
  readonly address: string;
  /** OS error code (`ENOENT`, `ECONNREFUSED`, …) or `ETIMEDOUT`, when known. */
  readonly code: string | undefined;

  constructor(address: string, code: string | undefined, message: string, options?: ErrorOptions) {
    super(message, options);
    this.address = address;
    this.code = code;
  }
}

/** A malformed argument in `key=value` or JSON form; `token` is the offending word. Exit 2. */
export class ArgumentSyntaxError extends Error {
  override readonly name = 'ArgumentSyntaxError' as const;
  readonly exitCode = 2 as const;
  readonly token: string;

  constructor(token: string, message: string) {
    super(message);
    this.token = token;
  }
}

/** A schema input for `schema diff` could not be read or understood. Exit 2. */
export class SchemaInputError extends Error {
  override readonly name = 'SchemaInputError' as const;
  readonly exitCode = 2 as const;
  /** The input as given on the command line. */
  readonly input: string;

  constructor(input: string, message: string, options?: ErrorOptions) {
    super(`${input}: ${message}`, options);
    this.input = input;
  }
}

/**
 * `qmpkit vm start` failed: a supervisor already runs in the directory, the configuration was
 * refused, or QEMU did not start (the message carries QEMU's own error). Exit 2.
 */
export class VmStartError extends Error {
  override readonly name = 'VmStartError' as const;
  readonly exitCode = 2 as const;
  /** The VM directory. */
  readonly dir: string;
  /** Why: `running` (a supervisor answers there), `config`, `launch` (QEMU or the supervisor failed). */
  readonly reason: 'running' | 'config' | 'launch';
  /** The error class the supervisor reported (`QemuLaunchError`, …), when it reported one. */
  readonly remote: string | undefined;

  constructor(
    dir: string,
    reason: 'running' | 'config' | 'launch',
    message: string,
    options?: ErrorOptions & { remote?: string },
  ) {
    super(message, options);
    this.dir = dir;
    this.reason = reason;
    this.remote = options?.remote;
  }
}

/**
 * `qmpkit vm init` did not write the example: the file exists (and `--force` was not given)
 * or cannot be written. Exit 1.
 */
export class VmInitError extends Error {
  override readonly name = 'VmInitError' as const;
  readonly exitCode = 1 as const;
  /** The file that was not written. */
  readonly file: string;
  /** The system error code (`EEXIST`, `ENOENT`, `EACCES`, …). */
  readonly code: string | undefined;

  constructor(file: string, code: string | undefined, message: string, options?: ErrorOptions) {
    super(message, options);
    this.file = file;
    this.code = code;
  }
}

export type CliError =
  | CliUsageError
  | CliConnectError
  | ArgumentSyntaxError
  | SchemaInputError
  | VmStartError
  | VmInitError;

export function isCliUsageError(value: unknown): value is CliUsageError {
  return hasName(value, 'CliUsageError');
}
export function isCliConnectError(value: unknown): value is CliConnectError {
  return hasName(value, 'CliConnectError');
}
export function isArgumentSyntaxError(value: unknown): value is ArgumentSyntaxError {
  return hasName(value, 'ArgumentSyntaxError');
}
export function isSchemaInputError(value: unknown): value is SchemaInputError {
  return hasName(value, 'SchemaInputError');
}
export function isVmStartError(value: unknown): value is VmStartError {
  return hasName(value, 'VmStartError');
}
export function isVmInitError(value: unknown): value is VmInitError {
  return hasName(value, 'VmInitError');
}
/** Any error of this package (all carry `exitCode`). */
export function isCliError(value: unknown): value is CliError {
  return (
    isCliUsageError(value) ||
    isCliConnectError(value) ||
    isArgumentSyntaxError(value) ||
    isSchemaInputError(value) ||
    isVmStartError(value) ||
    isVmInitError(value)
  );
}
