/**
 * Errors of the CLI's WebSocket servers (`qmpkit bridge`, `qmpkit serve`). Each has a
 * literal `name`, the exit code the CLI uses, and fields to act on.
 */

/** `--listen` names an address that is not loopback, or is not `HOST:PORT`. Exit 2. */
export class ListenAddressError extends Error {
  override readonly name = 'ListenAddressError' as const;
  readonly exitCode = 2 as const;
  /** The address as given. */
  readonly address: string;
  /**
   * `not-loopback`: a routable address without `--allow-remote` (refused: these servers hand
   * out a VM); `syntax`.
   */
  readonly reason: 'not-loopback' | 'syntax';

  constructor(address: string, reason: 'not-loopback' | 'syntax', message: string) {
    super(message);
    this.address = address;
    this.reason = reason;
  }
}

/** The server could not listen (port taken, permission). Exit 2. */
export class ListenError extends Error {
  override readonly name = 'ListenError' as const;
  readonly exitCode = 2 as const;
  readonly host: string;
  readonly port: number;
  /** OS error code (`EADDRINUSE`, `EACCES`, …). */
  readonly code: string | undefined;

  constructor(host: string, port: number, code: string | undefined, options?: ErrorOptions) {
    super(`cannot listen on ${host}:${port}: ${code ?? 'error'}`, options);
    this.host = host;
    this.port = port;
    this.code = code;
  }
}

export function isListenAddressError(value: unknown): value is ListenAddressError {
  return hasName(value, 'ListenAddressError');
}
export function isListenError(value: unknown): value is ListenError {
  return hasName(value, 'ListenError');
}

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;
}
