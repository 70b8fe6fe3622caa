/** Errors of the NBD client (literal `name`, guards by name like the package's others). */

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;
}

/** The peer broke the NBD protocol, went away, or the connection failed. */
export class NbdProtocolError extends Error {
  override readonly name = 'NbdProtocolError' as const;
}

export function isNbdProtocolError(value: unknown): value is NbdProtocolError {
  return hasName(value, 'NbdProtocolError');
}

/** The NBD server refused an option or a command (with its errno and message). */
export class NbdServerError extends Error {
  override readonly name = 'NbdServerError' as const;
  readonly operation: string;
  readonly errno: number;
  constructor(operation: string, errno: number, message: string) {
    super(`NBD server refused ${operation}: errno ${errno}${message === '' ? '' : `: ${message}`}`);
    this.operation = operation;
    this.errno = errno;
  }
}

export function isNbdServerError(value: unknown): value is NbdServerError {
  return hasName(value, 'NbdServerError');
}
