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

export type NbdTlsFailure =
  | 'starttls-refused'
  | 'certificate'
  | 'handshake'
  | 'client-certificate-refused';

/**
 * The TLS upgrade of an NBD connection failed; the client never falls back to plaintext.
 * `starttls-refused`: the server answered `NBD_OPT_STARTTLS` with an error (`errno`, its
 * message); `certificate`: the server's certificate did not verify against the CA or the
 * hostname (`code` is Node's, e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`); `handshake`: the handshake failed otherwise (the server
 * closed the connection during it, no common protocol); `client-certificate-refused`: the
 * handshake completed on our side, then the server dropped the connection before answering
 * anything — QEMU checks the client certificate only after its own handshake, so under TLS
 * 1.3 that is how it refuses our certificate (or our lack of one).
 */
export class NbdTlsError extends Error {
  override readonly name = 'NbdTlsError' as const;
  readonly reason: NbdTlsFailure;
  readonly code: string | undefined;
  readonly errno: number | undefined;
  constructor(
    reason: NbdTlsFailure,
    message: string,
    details: { readonly code?: string; readonly errno?: number } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.reason = reason;
    this.code = details.code;
    this.errno = details.errno;
  }
}

export function isNbdTlsError(value: unknown): value is NbdTlsError {
  return hasName(value, 'NbdTlsError');
}
