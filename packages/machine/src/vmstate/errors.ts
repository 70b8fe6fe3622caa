/**
 * Error classes of machine's vmstate module (`-dump-vmstate` reading, comparing, running).
 * Each has a literal `name`; the guards check `name`, so a second copy of the package is
 * recognised too.
 */

/** What is wrong with a dump: no bytes, not JSON, or JSON that is not a `-dump-vmstate` dump. */
export type VmstateDumpProblem = 'empty' | 'not-json' | 'shape';

/**
 * A `-dump-vmstate` dump could not be read. `source` names the input (a file, a binary),
 * `path` the JSON location that is wrong (`$["e1000"].Description.Fields[2].size`) for `shape`.
 */
export class VmstateDumpError extends Error {
  override readonly name = 'VmstateDumpError' as const;
  readonly problem: VmstateDumpProblem;
  readonly source: string;
  readonly path: string | undefined;

  constructor(
    problem: VmstateDumpProblem,
    source: string,
    detail: string,
    init: { path?: string; cause?: unknown } = {},
  ) {
    super(
      `${source}: ${init.path === undefined ? '' : `${init.path}: `}${detail}`,
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.problem = problem;
    this.source = source;
    this.path = init.path;
  }
}

export function isVmstateDumpError(value: unknown): value is VmstateDumpError {
  return value instanceof Error && value.name === 'VmstateDumpError';
}

/** Two dumps come from QEMUs of different target architectures: comparing them means nothing. */
export class VmstateArchitectureError extends Error {
  override readonly name = 'VmstateArchitectureError' as const;
  readonly source: string;
  readonly destination: string;

  constructor(source: string, destination: string, detail: string) {
    super(`the dumps come from different architectures (${source} → ${destination}): ${detail}`);
    this.source = source;
    this.destination = destination;
  }
}

export function isVmstateArchitectureError(value: unknown): value is VmstateArchitectureError {
  return value instanceof Error && value.name === 'VmstateArchitectureError';
}

/**
 * Why `dumpVmstate` got no dump from a binary that is QEMU: it lacks the machine type, it
 * exited with an error, it ran past the timeout, or it exited 0 without writing a dump.
 */
export type VmstateRunProblem = 'unknown-machine-type' | 'failed' | 'timeout' | 'no-dump';

/** Running `qemu -dump-vmstate` failed; `stderr` is QEMU's own explanation. */
export class VmstateRunError extends Error {
  override readonly name = 'VmstateRunError' as const;
  readonly problem: VmstateRunProblem;
  readonly binary: string;
  readonly machine: string;
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(
    problem: VmstateRunProblem,
    detail: string,
    fields: {
      binary: string;
      machine: string;
      argv: readonly string[];
      exitCode: number | null;
      stderr: string;
      cause?: unknown;
    },
  ) {
    super(
      `${fields.binary} -machine ${fields.machine} -dump-vmstate: ${detail}`,
      fields.cause === undefined ? undefined : { cause: fields.cause },
    );
    this.problem = problem;
    this.binary = fields.binary;
    this.machine = fields.machine;
    this.argv = fields.argv;
    this.exitCode = fields.exitCode;
    this.stderr = fields.stderr;
  }
}

export function isVmstateRunError(value: unknown): value is VmstateRunError {
  return value instanceof Error && value.name === 'VmstateRunError';
}
