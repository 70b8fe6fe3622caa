/**
 * Error classes of `@qmpkit/transport`. Every class has a literal `name`, the fields a
 * caller can act on, and `cause` where there is one. Use the `is…` guards rather than
 * `instanceof` when errors may cross copies of this package (they check `name`).
 */

import type { ValidationProblem } from '@qmpkit/qapi/runtime-v1';

interface Named {
  readonly name: string;
}

function hasName(value: unknown, name: string): boolean {
  return typeof value === 'object' && value !== null && (value as Partial<Named>).name === name;
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends Error {
  override readonly name = 'QmpCommandError' as const;
  /** QEMU's error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
  readonly errorClass: string;
  /** QEMU's human-readable text (do not parse it). */
  readonly desc: string;
  readonly command: string;
  readonly arguments: unknown;
  /** The id the command was sent with (`undefined` for QEMU's id-less parse errors). */
  readonly id: unknown;

  constructor(init: {
    errorClass: string;
    desc: string;
    command: string;
    arguments: unknown;
    id: unknown;
  }) {
    super(`${init.command}: ${init.errorClass}: ${init.desc}`);
    this.errorClass = init.errorClass;
    this.desc = init.desc;
    this.command = init.command;
    this.arguments = init.arguments;
    this.id = init.id;
  }
}

/** What the peer sent is not QMP (bad JSON, bad UTF-8, unknown shape, over-long line, …). */
export class QmpProtocolError extends Error {
  override readonly name = 'QmpProtocolError' as const;
  /** Machine-readable reason. */
  readonly code: QmpProtocolErrorCode;
  /** The offending line (at most 512 characters of it), when there is one. */
  readonly raw: string | undefined;

  constructor(code: QmpProtocolErrorCode, message: string, raw?: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.raw = raw === undefined ? undefined : raw.length > 512 ? `${raw.slice(0, 512)}…` : raw;
  }
}

export type QmpProtocolErrorCode =
  | 'invalid-json'
  | 'invalid-utf8'
  | 'not-an-object'
  | 'unknown-shape'
  | 'line-too-long'
  | 'message-too-long'
  | 'stray-token'
  | 'too-many-tokens'
  | 'nesting-too-deep'
  | 'truncated'
  | 'bad-greeting'
  | 'unexpected-message'
  | 'unknown-id'
  | 'unattributed-error'
  | 'negotiation-failed'
  | 'unexpected-reply';

/** A command, a connect or an event wait did not finish in time. */
export class QmpTimeoutError extends Error {
  override readonly name = 'QmpTimeoutError' as const;
  /** The command (or `connect`, or the awaited event name). */
  readonly operation: string;
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number, message?: string) {
    super(message ?? `${operation}: no answer within ${timeoutMs} ms`);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The connection ended while a command was pending: QEMU may or may not have run it
 * (outcome unknown). `cause` holds why the connection ended, when known.
 */
export class QmpDisconnectedError extends Error {
  override readonly name = 'QmpDisconnectedError' as const;
  /** The pending command, or `undefined` for waits that were not commands. */
  readonly command: string | undefined;

  constructor(command: string | undefined, options?: ErrorOptions) {
    super(
      command === undefined
        ? 'QMP connection closed'
        : `${command}: QMP connection closed before the reply (outcome unknown)`,
      options,
    );
    this.command = command;
  }
}

/** Connecting failed (socket error, refused, timed out before the greeting, …). */
export class QmpConnectionError extends Error {
  override readonly name = 'QmpConnectionError' as const;
  /** The address as given (`unix:/path`, `tcp:host:port`, `ws://…`, `duplex`). */
  readonly address: string;
  /** OS error code (`ENOENT`, `ECONNREFUSED`, …) or `ETIMEDOUT` for our own deadline. */
  readonly code: string | undefined;

  constructor(address: string, code: string | undefined, message: string, options?: ErrorOptions) {
    super(`${address}: ${message}`, options);
    this.address = address;
    this.code = code;
  }
}

/** Arguments (or, in strict mode, a reply) do not match the schema tables. */
export class QmpValidationError extends Error {
  override readonly name = 'QmpValidationError' as const;
  readonly command: string;
  /** `arguments` (checked before sending) or `return` (a reply, strict mode only). */
  readonly direction: 'arguments' | 'return';
  readonly problems: readonly ValidationProblem[];

  constructor(command: string, direction: 'arguments' | 'return', problems: ValidationProblem[]) {
    super(
      `${command}: invalid ${direction}: ${problems
        .slice(0, 5)
        .map((p) => `${p.path}: ${p.message}`)
        .join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
    );
    this.command = command;
    this.direction = direction;
    this.problems = problems;
  }
}

/** A job (e.g. `snapshot-save`, `blockdev-create`) concluded with an error. */
export class QmpJobError extends Error {
  override readonly name = 'QmpJobError' as const;
  readonly jobId: string;
  readonly command: string;
  /** QEMU's error text from `query-jobs` (read before `job-dismiss`). */
  readonly desc: string;

  constructor(init: { jobId: string; command: string; desc: string }) {
    super(`${init.command} job '${init.jobId}' failed: ${init.desc}`);
    this.jobId = init.jobId;
    this.command = init.command;
    this.desc = init.desc;
  }
}

/**
 * An HMP command failed: `human-monitor-command` succeeded at the QMP level, but the command
 * line's output reports an error (a line starting with `Error:`). Only raised by
 * `hmp(line, { errors: 'throw' })`.
 */
export class QmpHmpError extends Error {
  override readonly name = 'QmpHmpError' as const;
  readonly commandLine: string;
  /** The text after `Error:` on the first such line. */
  readonly desc: string;
  /** The whole output, as QEMU returned it. */
  readonly output: string;

  constructor(init: { commandLine: string; desc: string; output: string }) {
    super(`HMP '${init.commandLine}' failed: ${init.desc}`);
    this.commandLine = init.commandLine;
    this.desc = init.desc;
    this.output = init.output;
  }
}

/** An event iterator's buffer overflowed (the consumer was slower than QEMU). */
export class QmpEventOverflowError extends Error {
  override readonly name = 'QmpEventOverflowError' as const;
  /** Events dropped when the buffer was full (the stream stops listening at the first). */
  readonly dropped: number;
  readonly capacity: number;

  constructor(dropped: number, capacity: number) {
    super(
      `event buffer of ${capacity} overflowed (${dropped} event(s) dropped): the consumer was too slow and the stream stopped`,
    );
    this.dropped = dropped;
    this.capacity = capacity;
  }
}

/**
 * A capability question (`has`, `supports`, `supportsValue`, `supportsFeature`) about a
 * command, event, argument, value or feature that neither the connected QEMU nor any QEMU version the bindings know
 * has: almost certainly a typo from untyped code (TypeScript rejects it at compile time).
 * A `TypeError`, like other programming errors.
 */
export class QmpUnknownCapabilityError extends TypeError {
  override readonly name = 'QmpUnknownCapabilityError' as const;
  /** What is unknown: a command/event name, an argument of one, an enum value, or a feature. */
  readonly kind: 'name' | 'argument' | 'value' | 'feature';
  /**
   * The unknown thing as asked: `snapshot-sav`, `blockdev-add.discrad`, `qcow3`,
   * `blockdev-snapshot/$allow-write-only-overlai`.
   */
  readonly capability: string;
  /** The QEMU versions the bindings know, oldest first. */
  readonly knownVersions: readonly string[];

  constructor(init: {
    kind: 'name' | 'argument' | 'value' | 'feature';
    capability: string;
    knownVersions: readonly string[];
  }) {
    const what =
      init.kind === 'name'
        ? 'a command or event'
        : init.kind === 'argument'
          ? 'an argument'
          : init.kind === 'feature'
            ? 'a feature'
            : 'an accepted value';
    const range =
      init.knownVersions.length === 0
        ? 'any known QEMU'
        : `QEMU ${init.knownVersions[0]}–${init.knownVersions.at(-1)} (the versions these bindings know)`;
    super(`'${init.capability}' is not ${what} in ${range} nor in the connected QEMU`);
    this.kind = init.kind;
    this.capability = init.capability;
    this.knownVersions = init.knownVersions;
  }
}

export function isQmpCommandError(value: unknown): value is QmpCommandError {
  return hasName(value, 'QmpCommandError');
}
export function isQmpProtocolError(value: unknown): value is QmpProtocolError {
  return hasName(value, 'QmpProtocolError');
}
/**
 * The stream sink's worker thread (which hashes and writes what the socket delivers) died
 * or could not start; the transfer is lost. `cause` holds the worker's error when known.
 */
export class QmpStreamError extends Error {
  override readonly name = 'QmpStreamError' as const;
  /** The destination file of the failed transfer. */
  readonly file: string;

  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`stream sink for ${file}: ${message}`, options);
    this.file = file;
  }
}

export function isQmpTimeoutError(value: unknown): value is QmpTimeoutError {
  return hasName(value, 'QmpTimeoutError');
}
export function isQmpDisconnectedError(value: unknown): value is QmpDisconnectedError {
  return hasName(value, 'QmpDisconnectedError');
}
export function isQmpConnectionError(value: unknown): value is QmpConnectionError {
  return hasName(value, 'QmpConnectionError');
}
export function isQmpValidationError(value: unknown): value is QmpValidationError {
  return hasName(value, 'QmpValidationError');
}
export function isQmpJobError(value: unknown): value is QmpJobError {
  return hasName(value, 'QmpJobError');
}
export function isQmpEventOverflowError(value: unknown): value is QmpEventOverflowError {
  return hasName(value, 'QmpEventOverflowError');
}
export function isQmpUnknownCapabilityError(value: unknown): value is QmpUnknownCapabilityError {
  return hasName(value, 'QmpUnknownCapabilityError');
}
export function isQmpStreamError(value: unknown): value is QmpStreamError {
  return hasName(value, 'QmpStreamError');
}
export function isQmpHmpError(value: unknown): value is QmpHmpError {
  return hasName(value, 'QmpHmpError');
}

/**
 * `guest-sync-delimited` got no reply carrying its id in time. `stale` holds what arrived
 * instead (replies to earlier clients or commands, other sync ids, undecodable lines): empty
 * means nothing answered at all (the agent is not running yet, or is busy with an earlier
 * command); non-empty means something answered, but not in sync with this client.
 */
export class AgentSyncError extends Error {
  override readonly name = 'AgentSyncError' as const;
  /** The random id the sync was sent with. */
  readonly syncId: number;
  readonly timeoutMs: number;
  /** Messages (or protocol errors) received while waiting, oldest first, at most 16. */
  readonly stale: readonly unknown[];

  constructor(
    syncId: number,
    timeoutMs: number,
    stale: readonly unknown[],
    options?: ErrorOptions,
  ) {
    super(
      stale.length === 0
        ? `guest-sync-delimited (id ${syncId}): no answer within ${timeoutMs} ms`
        : `guest-sync-delimited (id ${syncId}): no reply with this id within ${timeoutMs} ms (${stale.length} stale message${stale.length === 1 ? '' : 's'} instead, first: ${JSON.stringify(stale[0])})`,
      options,
    );
    this.syncId = syncId;
    this.timeoutMs = timeoutMs;
    this.stale = stale;
  }
}

export function isAgentSyncError(value: unknown): value is AgentSyncError {
  return hasName(value, 'AgentSyncError');
}
