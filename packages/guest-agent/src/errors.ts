/**
 * Error classes of `@qmpkit/guest-agent`. Each has a literal `name` (check with the `is…`
 * guards, which compare names, when errors may cross copies of the package) and `cause`.
 * Errors of the wire itself come from `@qmpkit/transport`: `QmpCommandError` (the agent
 * answered with an error: a path it rejects, a program it cannot run), `QmpTimeoutError`,
 * `AgentSyncError`, `QmpProtocolError` (an undecodable reply), `QmpDisconnectedError`.
 */

interface Named {
  readonly name: string;
}
const hasName = (value: unknown, name: string): boolean =>
  typeof value === 'object' && value !== null && (value as Partial<Named>).name === name;

/** Why `waitForAgent` gave up. */
export type AgentUnavailableReason =
  /** Nothing answered the sync in time: qemu-ga has not opened its port (yet). */
  | 'not-running'
  /** The agent answered, but `guest-ping` failed (e.g. the command is disabled). */
  | 'error'
  /** The host end of the channel cannot be opened or was closed (QEMU gone, wrong path). */
  | 'closed';

/** `waitForAgent` did not get an answer to `guest-ping`. `cause` holds the last failure. */
export class AgentUnavailableError extends Error {
  override readonly name = 'AgentUnavailableError' as const;
  readonly reason: AgentUnavailableReason;
  readonly timeoutMs: number;

  constructor(
    reason: AgentUnavailableReason,
    timeoutMs: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.reason = reason;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The agent went away while a command was in flight: QEMU reported the guest side of the
 * port closed (`VSERPORT_CHANGE` with `open: false`) — qemu-ga died, was killed or
 * restarted. The command's outcome is unknown. Later commands wait for the agent to reopen
 * the port and resynchronise first.
 */
export class AgentLostError extends Error {
  override readonly name = 'AgentLostError' as const;
  /** The command in flight. */
  readonly command: string;
  /** The virtio-serial port device (`VSERPORT_CHANGE`'s `id`). */
  readonly port: string;

  constructor(command: string, port: string, options?: ErrorOptions) {
    super(
      `${command}: the guest agent closed its port '${port}' before the reply (outcome unknown)`,
      options,
    );
    this.command = command;
    this.port = port;
  }
}

/** `exec` did not see the process exit in time. The process may still run in the guest. */
export class GuestExecTimeoutError extends Error {
  override readonly name = 'GuestExecTimeoutError' as const;
  readonly argv: readonly string[];
  /** The guest pid (`guest-exec`'s answer). */
  readonly pid: number;
  readonly timeoutMs: number;

  constructor(argv: readonly string[], pid: number, timeoutMs: number) {
    super(`${argv.join(' ')}: still running in the guest (pid ${pid}) after ${timeoutMs} ms`);
    this.argv = argv;
    this.pid = pid;
    this.timeoutMs = timeoutMs;
  }
}

/** `readFile` met a file larger than `maxBytes`. */
export class GuestFileTooLargeError extends Error {
  override readonly name = 'GuestFileTooLargeError' as const;
  readonly path: string;
  readonly maxBytes: number;

  constructor(path: string, maxBytes: number) {
    super(`${path}: larger than ${maxBytes} bytes`);
    this.path = path;
    this.maxBytes = maxBytes;
  }
}

/**
 * Thawing the guest's filesystems failed after a frozen scope. The filesystems may still
 * be frozen: call `thaw()` again. `cause` is the thaw's failure; `scopeError` what the scope
 * itself threw, if anything.
 */
export class GuestThawError extends Error {
  override readonly name = 'GuestThawError' as const;
  readonly scopeError: unknown;

  constructor(scopeError: unknown, options: ErrorOptions) {
    super(
      `guest-fsfreeze-thaw failed: the guest's filesystems may still be frozen (${(options.cause as Error | undefined)?.message ?? 'unknown'})`,
      options,
    );
    this.scopeError = scopeError;
  }
}

export const isAgentUnavailableError = (v: unknown): v is AgentUnavailableError =>
  hasName(v, 'AgentUnavailableError');
export const isAgentLostError = (v: unknown): v is AgentLostError => hasName(v, 'AgentLostError');
export const isGuestExecTimeoutError = (v: unknown): v is GuestExecTimeoutError =>
  hasName(v, 'GuestExecTimeoutError');
export const isGuestFileTooLargeError = (v: unknown): v is GuestFileTooLargeError =>
  hasName(v, 'GuestFileTooLargeError');
export const isGuestThawError = (v: unknown): v is GuestThawError => hasName(v, 'GuestThawError');
