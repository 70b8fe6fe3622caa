/**
 * Error classes of `@qmpkit/debian`. Each has a literal `name` and the fields a caller can act
 * on; the guards check `name`, so errors from a second copy of the package are recognised.
 */

function hasName(error: unknown, name: string): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === name;
}

/** A tool (`apt-get`, `apt-cache`, `dpkg`) could not be started or exited unsuccessfully. */
export class DebianToolError extends Error {
  override readonly name = 'DebianToolError' as const;
  /** The executable, e.g. `apt-get`. */
  readonly command: string;
  /** Its argument array, exactly as spawned. */
  readonly args: readonly string[];
  /** Exit code, or `null` when it never started or was killed. */
  readonly exitCode: number | null;
  /** The tail of what it wrote to stderr (or stdout when stderr was empty). */
  readonly output: string;

  constructor(
    init: { command: string; args: readonly string[]; exitCode: number | null; output: string },
    options?: { cause?: unknown },
  ) {
    const how =
      init.exitCode === null ? 'could not be run' : `failed (exit ${String(init.exitCode)})`;
    const verb = init.args.find((a, i) => !a.startsWith('-') && init.args[i - 1] !== '-o') ?? '';
    super(
      `${init.command} ${verb} ${how}${init.output ? `:\n${init.output}` : ''}`.replace('  ', ' '),
      options,
    );
    this.command = init.command;
    this.args = init.args;
    this.exitCode = init.exitCode;
    this.output = init.output;
  }
}

/** A package name has no candidate version in the configured suites. */
export class DebianPackageNotFoundError extends Error {
  override readonly name = 'DebianPackageNotFoundError' as const;
  /** The package names that were not found. */
  readonly packages: readonly string[];
  /** The suites that were searched, e.g. `['bookworm', 'bookworm-backports']`. */
  readonly suites: readonly string[];
  /** The release asked for (`name/release`), if any. */
  readonly release: string | undefined;

  constructor(packages: readonly string[], suites: readonly string[], release?: string) {
    super(
      `no candidate for ${packages.join(', ')} in ${suites.join(', ')}${release ? ` (release ${release})` : ''}`,
    );
    this.packages = packages;
    this.suites = suites;
    this.release = release;
  }
}

/** A downloaded file does not match the checksum in the package index. */
export class DebianChecksumError extends Error {
  override readonly name = 'DebianChecksumError' as const;
  readonly file: string;
  readonly expected: string;
  readonly actual: string;

  constructor(file: string, expected: string, actual: string) {
    super(`${file}: sha256 ${actual}, expected ${expected} (from the package index)`);
    this.file = file;
    this.expected = expected;
    this.actual = actual;
  }
}

/** Options that cannot work (a suite name with spaces, a relative directory, …). */
export class DebianOptionsError extends Error {
  override readonly name = 'DebianOptionsError' as const;
  readonly option: string;
  readonly value: unknown;

  constructor(option: string, value: unknown, reason: string) {
    super(`invalid ${option} (${JSON.stringify(value)}): ${reason}`);
    this.option = option;
    this.value = value;
  }
}

export function isDebianToolError(error: unknown): error is DebianToolError {
  return hasName(error, 'DebianToolError');
}
export function isDebianPackageNotFoundError(error: unknown): error is DebianPackageNotFoundError {
  return hasName(error, 'DebianPackageNotFoundError');
}
export function isDebianChecksumError(error: unknown): error is DebianChecksumError {
  return hasName(error, 'DebianChecksumError');
}
export function isDebianOptionsError(error: unknown): error is DebianOptionsError {
  return hasName(error, 'DebianOptionsError');
}
