import type { Duplex } from 'node:stream';
import type { Commands as Qga72Commands } from '@qmpkit/qapi/qga-7.2';
import {
  type ArgsOf,
  type CloseReason,
  type CommandMap,
  type CommandName,
  type ExecuteOptions,
  type ExecuteRest,
  isAgentSyncError,
  isQmpCommandError,
  isQmpConnectionError,
  isQmpDisconnectedError,
  type Logger,
  type ReturnOf,
} from '@qmpkit/transport';
import {
  AgentSession,
  type AgentSessionOptions,
  type NoReplyOutcome,
} from '@qmpkit/transport/agent';
import {
  AgentLostError,
  AgentUnavailableError,
  GuestExecTimeoutError,
  GuestFileTooLargeError,
  GuestThawError,
} from './errors.js';

/** Commands that answer only when they fail (`success-response: false` in the qga schema). */
export const NO_REPLY_COMMANDS: ReadonlySet<string> = new Set([
  'guest-shutdown',
  'guest-suspend-disk',
  'guest-suspend-ram',
  'guest-suspend-hybrid',
]);

/** Milliseconds per command; `default` for the rest. */
export interface TimeoutPolicy {
  readonly default: number;
  readonly commands: Readonly<Record<string, number>>;
}

/**
 * Defaults: 30 s per command. Freeze and thaw get 120 s (Proxmox measured thaws of 54 s on
 * Windows guests; a thaw cut short leaves the guest blocked). Commands that answer only on
 * failure get 10 s of silence before they count as accepted.
 */
export const DEFAULT_TIMEOUTS: TimeoutPolicy = {
  default: 30_000,
  commands: {
    'guest-fsfreeze-freeze': 120_000,
    'guest-fsfreeze-freeze-list': 120_000,
    'guest-fsfreeze-thaw': 120_000,
    'guest-shutdown': 10_000,
    'guest-suspend-disk': 10_000,
    'guest-suspend-ram': 10_000,
    'guest-suspend-hybrid': 10_000,
  },
};

/** What `attachQmp` needs from a QMP client (`QmpClient` of `@qmpkit/transport` fits). */
export interface VserportEvents {
  on(
    name: 'VSERPORT_CHANGE',
    fn: (event: { readonly data: { readonly id: string; readonly open: boolean } }) => void,
  ): () => void;
}

export interface GuestAgentOptions {
  /**
   * The host end of the agent's chardev: the path of a `-chardev socket,…,server=on` UNIX
   * socket, or a function that opens a stream to it (e.g. a chardev added over QMP with
   * `chardev-add`, or an fd QEMU was given). Called again to reconnect after a close.
   */
  readonly socket: string | (() => Promise<Duplex>);
  /** Per-command timeouts, merged over `DEFAULT_TIMEOUTS`. */
  readonly timeouts?: { readonly default?: number; readonly commands?: Record<string, number> };
  readonly logger?: Logger;
  readonly trace?: AgentSessionOptions['trace'];
}

export interface WaitForAgentOptions {
  /** Total milliseconds to wait (default 120 000: real distributions take ~100 s to boot). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

export interface ExecOptions {
  /** Bytes (or UTF-8 text) for the program's standard input. */
  readonly stdin?: Uint8Array | string;
  /** `NAME=value` entries for the environment. */
  readonly env?: readonly string[];
  /** Milliseconds until `GuestExecTimeoutError` (default 60 000). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

export interface ExecResult {
  /** Exit status, when the process exited normally. */
  readonly exitcode: number | undefined;
  /** The signal that ended it, when it was killed. */
  readonly signal: number | undefined;
  /** Standard output and error, decoded as UTF-8 (`…Bytes` hold the exact bytes). */
  readonly stdout: string;
  readonly stderr: string;
  readonly stdoutBytes: Uint8Array;
  readonly stderrBytes: Uint8Array;
  /** The agent cut the captured output at its limit (16 MiB). */
  readonly truncated: boolean;
}

export interface FreezeOptions {
  /** Freeze only these mount points (`guest-fsfreeze-freeze-list`); default all. */
  readonly mountpoints?: readonly string[];
  /** Aborting ends the scope at once; the filesystems are thawed before the rejection. */
  readonly signal?: AbortSignal;
}

/** Port state as QMP last reported it (`unknown` before any `VSERPORT_CHANGE`). */
export type AgentPortState = 'unknown' | 'open' | 'closed';

const FILE_CHUNK = 48 * 1024;
const noop = (): void => {};

/**
 * A typed client for a QEMU guest agent. `C` is a qga version's command map
 * (`Commands` of `@qmpkit/qapi/qga-7.2` or `qga-10.0`; default 7.2).
 */
export class GuestAgent<C extends CommandMap<C> = Qga72Commands> {
  private readonly options: GuestAgentOptions;
  private readonly timeouts: TimeoutPolicy;
  private session: AgentSession | undefined;
  private opening: Promise<AgentSession> | undefined;
  private closedByUser = false;
  private port: AgentPortState = 'unknown';
  private portWaiters: (() => void)[] = [];

  constructor(options: GuestAgentOptions) {
    this.options = options;
    this.timeouts = {
      default: options.timeouts?.default ?? DEFAULT_TIMEOUTS.default,
      commands: { ...DEFAULT_TIMEOUTS.commands, ...options.timeouts?.commands },
    };
  }

  /** The timeout `command` gets unless the call names one. */
  timeoutFor(command: string): number {
    return this.timeouts.commands[command] ?? this.timeouts.default;
  }

  /** The agent's port as QMP last reported it (`attachQmp`). */
  get portState(): AgentPortState {
    return this.port;
  }

  /**
   * Follows `VSERPORT_CHANGE` for the agent's port device (`-device virtserialport,id=…`):
   * when the guest closes the port (qemu-ga died), the command in flight rejects with
   * `AgentLostError` and the next command resynchronises. Returns the unsubscribe function.
   */
  attachQmp(qmp: VserportEvents, portId: string): () => void {
    return qmp.on('VSERPORT_CHANGE', (event) => {
      if (event.data.id !== portId) return;
      this.port = event.data.open ? 'open' : 'closed';
      if (event.data.open) this.session?.invalidate();
      else this.session?.agentGone((command) => new AgentLostError(command, portId));
      const waiters = this.portWaiters;
      this.portWaiters = [];
      for (const w of waiters) w();
    });
  }

  /** Resolves when QMP next reports the port in `state` (at once if it already is). */
  async waitForPort(state: 'open' | 'closed', signal?: AbortSignal): Promise<void> {
    while (this.port !== state) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.portWaiters.push(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }

  private async open(): Promise<AgentSession> {
    if (this.closedByUser)
      throw new AgentUnavailableError('closed', 0, 'the guest agent client was closed');
    if (this.session && !this.session.isClosed) return this.session;
    this.opening ??= (async () => {
      const { socket, logger, trace } = this.options;
      const base: AgentSessionOptions = {
        ...(logger ? { logger } : {}),
        ...(trace ? { trace } : {}),
      };
      const session =
        typeof socket === 'string'
          ? await AgentSession.connect(socket, base)
          : AgentSession.attach(await socket(), base);
      this.session = session;
      return session;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** Runs a command of the agent, typed by the version's command map. */
  execute<K extends CommandName<C>>(
    command: K,
    ...rest: ExecuteRest<ArgsOf<C, K>>
  ): Promise<ReturnOf<C, K>> {
    const [args, options] = rest as [unknown, ExecuteOptions | undefined];
    return this.send(command, args, options) as Promise<ReturnOf<C, K>>;
  }

  private send(command: string, args: unknown, options?: ExecuteOptions): Promise<unknown> {
    // An open session is used at once: no await (and no microtask) before the write.
    const session = this.session;
    if (session !== undefined && !session.isClosed && !this.closedByUser)
      return this.sendOn(session, command, args, options);
    return this.open().then((opened) => this.sendOn(opened, command, args, options));
  }

  private async sendOn(
    session: AgentSession,
    command: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): Promise<unknown> {
    const sendOptions = {
      timeout: options?.timeout ?? this.timeoutFor(command),
      signal: options?.signal,
    };
    if (NO_REPLY_COMMANDS.has(command)) {
      await session.sendNoReply(command, args, sendOptions);
      return {};
    }
    return session.send(command, args, sendOptions);
  }

  /** Commands common to qemu-ga 7.2 and later, for the helpers below. */
  private call<K extends CommandName<Qga72Commands>>(
    command: K,
    args: ArgsOf<Qga72Commands, K>,
    options?: ExecuteOptions,
  ): Promise<ReturnOf<Qga72Commands, K>> {
    return this.send(command, args, options) as Promise<ReturnOf<Qga72Commands, K>>;
  }

  /**
   * Waits until the agent answers `guest-ping`: connects (retrying while the socket is not
   * there yet), syncs (QEMU holds the sync until qemu-ga opens its port, so no polling is
   * needed), pings. Rejects with
   * `AgentUnavailableError` whose `reason` says which of the three ways it failed.
   */
  async waitForAgent(options: WaitForAgentOptions = {}): Promise<void> {
    const timeout = options.timeout ?? 120_000;
    const started = performance.now();
    const left = () => Math.max(0, timeout - (performance.now() - started));
    const signal = options.signal;
    try {
      const session = await this.openWhenThere(left, signal);
      await session.sync({ timeout: left(), ...(signal ? { signal } : {}) });
      await session.send('guest-ping', undefined, {
        timeout: left(),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error;
      if (isQmpCommandError(error))
        throw new AgentUnavailableError(
          'error',
          timeout,
          `the guest agent answered guest-ping with an error: ${error.desc}`,
          { cause: error },
        );
      if (isQmpDisconnectedError(error) || isQmpConnectionError(error))
        throw new AgentUnavailableError(
          'closed',
          timeout,
          `the guest agent's channel is closed: ${error.message}`,
          { cause: error },
        );
      if (isAgentSyncError(error) && error.stale.length > 0)
        throw new AgentUnavailableError(
          'not-running',
          timeout,
          `no reply in sync from the guest agent within ${timeout} ms (${error.stale.length} stale)`,
          { cause: error },
        );
      throw new AgentUnavailableError(
        'not-running',
        timeout,
        `the guest agent did not answer within ${timeout} ms (not running yet?)`,
        { cause: error },
      );
    }
  }

  /**
   * Opens the channel, retrying while its socket is not there yet or refuses (QEMU is still
   * starting): a freshly spawned QEMU creates the socket a little later.
   */
  private async openWhenThere(left: () => number, signal?: AbortSignal): Promise<AgentSession> {
    for (;;) {
      try {
        return await this.open();
      } catch (error) {
        const code = isQmpConnectionError(error) ? error.code : undefined;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || left() <= 0) throw error;
        signal?.throwIfAborted();
        await new Promise<void>((resolve) => setTimeout(resolve, Math.min(50, left())));
      }
    }
  }

  /**
   * Runs a program in the guest (`guest-exec` + `guest-exec-status`) and waits for it to exit.
   * A program the guest cannot start rejects with the agent's `QmpCommandError`.
   */
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const [path, ...arg] = argv;
    if (path === undefined) throw new RangeError('exec: argv is empty');
    const timeout = options.timeout ?? 60_000;
    const started = performance.now();
    const signal = options.signal;
    const stdin =
      options.stdin === undefined
        ? undefined
        : Buffer.from(
            typeof options.stdin === 'string' ? Buffer.from(options.stdin, 'utf8') : options.stdin,
          ).toString('base64');
    const { pid } = await this.call(
      'guest-exec',
      {
        path,
        arg,
        'capture-output': true,
        ...(options.env ? { env: [...options.env] } : {}),
        ...(stdin !== undefined ? { 'input-data': stdin } : {}),
      },
      signal ? { signal } : undefined,
    );
    // qemu-ga has no "wait": poll, quickly at first, then every 200 ms at most.
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      const status = await this.call('guest-exec-status', { pid }, signal ? { signal } : undefined);
      if (status.exited) {
        const out = Buffer.from(status['out-data'] ?? '', 'base64');
        const err = Buffer.from(status['err-data'] ?? '', 'base64');
        return {
          exitcode: status.exitcode,
          signal: status.signal,
          stdout: out.toString('utf8'),
          stderr: err.toString('utf8'),
          stdoutBytes: new Uint8Array(out),
          stderrBytes: new Uint8Array(err),
          truncated: status['out-truncated'] === true || status['err-truncated'] === true,
        };
      }
      if (performance.now() - started >= timeout)
        throw new GuestExecTimeoutError(argv, pid, timeout);
      await new Promise<void>((resolve) => setTimeout(resolve, delay));
    }
  }

  /** Reads a whole file of the guest (`guest-file-open/read/close`). */
  async readFile(path: string, options: { maxBytes?: number } = {}): Promise<Uint8Array> {
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    const handle = await this.call('guest-file-open', { path, mode: 'r' });
    try {
      const parts: Buffer[] = [];
      let total = 0;
      for (;;) {
        const chunk = await this.call('guest-file-read', { handle, count: FILE_CHUNK });
        const bytes = Buffer.from(chunk['buf-b64'], 'base64');
        total += bytes.length;
        if (total > maxBytes) throw new GuestFileTooLargeError(path, maxBytes);
        parts.push(bytes);
        if (chunk.eof || bytes.length === 0) break;
      }
      return new Uint8Array(Buffer.concat(parts));
    } finally {
      await this.closeHandle(handle);
    }
  }

  /** Writes (creates or truncates) a file in the guest (`guest-file-open/write/close`). */
  async writeFile(path: string, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    const handle = await this.call('guest-file-open', { path, mode: 'w' });
    try {
      for (let at = 0; at < bytes.length || at === 0; at += FILE_CHUNK) {
        const piece = bytes.subarray(at, at + FILE_CHUNK);
        if (piece.length === 0) break;
        await this.call('guest-file-write', {
          handle,
          'buf-b64': piece.toString('base64'),
          count: piece.length,
        });
      }
      await this.call('guest-file-flush', { handle });
    } finally {
      await this.closeHandle(handle);
    }
  }

  private async closeHandle(handle: number): Promise<void> {
    try {
      await this.call('guest-file-close', { handle });
    } catch (error) {
      // The read/write error (already being thrown) matters more; a handle the agent could
      // not close is only logged (qemu-ga frees it when it restarts).
      (this.options.logger ?? console).warn(`guest-file-close ${handle} failed`, error);
    }
  }

  /** The guest's network interfaces (`guest-network-get-interfaces`). */
  networkInterfaces(): Promise<ReturnOf<Qga72Commands, 'guest-network-get-interfaces'>> {
    return this.call('guest-network-get-interfaces', undefined);
  }

  /**
   * Runs `fn` with the guest's filesystems frozen, and thaws them afterwards — when `fn`
   * resolves, throws, or the signal aborts (then at once, without waiting for `fn`). Resolves
   * with `fn`'s result; a failed thaw rejects with `GuestThawError`.
   */
  async withFrozenFilesystems<T>(
    fn: (frozen: number) => Promise<T> | T,
    options: FreezeOptions = {},
  ): Promise<T> {
    const signal = options.signal;
    signal?.throwIfAborted();
    let frozen: number;
    try {
      frozen = options.mountpoints
        ? await this.call('guest-fsfreeze-freeze-list', { mountpoints: [...options.mountpoints] })
        : await this.call('guest-fsfreeze-freeze', undefined);
    } catch (error) {
      // A freeze that failed or timed out may have frozen some filesystems: thaw them.
      await this.thawAfter(error);
      throw error;
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal?.reason);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(noop); // only raced below
    let result: T;
    try {
      result = await Promise.race([Promise.resolve().then(() => fn(frozen)), aborted]);
    } catch (error) {
      await this.thawAfter(error);
      throw error;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    await this.thawAfter(undefined);
    return result;
  }

  /**
   * Freezes the guest's filesystems (`guest-fsfreeze-freeze`, or `-freeze-list` for
   * `mountpoints`); resolves with how many were frozen. Prefer `withFrozenFilesystems`, which
   * always thaws; this and `thaw` are for callers that own the thaw themselves (the
   * `quiesce` hook of `@qmpkit/snapshots` takes an object with both).
   */
  freeze(mountpoints?: readonly string[]): Promise<number> {
    return mountpoints
      ? this.call('guest-fsfreeze-freeze-list', { mountpoints: [...mountpoints] })
      : this.call('guest-fsfreeze-freeze', undefined);
  }

  /** `guest-fsfreeze-status`: `frozen` or `thawed`. */
  async freezeStatus(): Promise<'frozen' | 'thawed'> {
    return this.call('guest-fsfreeze-status', undefined);
  }

  /** Thaws the guest's filesystems; resolves with how many were thawed. */
  thaw(): Promise<number> {
    return this.call('guest-fsfreeze-thaw', undefined);
  }

  private async thawAfter(scopeError: unknown): Promise<void> {
    try {
      await this.thaw();
    } catch (error) {
      throw new GuestThawError(scopeError, { cause: error });
    }
  }

  /** `guest-shutdown`: resolves once the agent accepted it or the channel closed. */
  async shutdown(mode?: 'powerdown' | 'halt' | 'reboot'): Promise<NoReplyOutcome> {
    const session = await this.open();
    return session.sendNoReply('guest-shutdown', mode ? { mode } : undefined, {
      timeout: this.timeoutFor('guest-shutdown'),
    });
  }

  /** Bytes the current connection dropped as stale (before a 0xFF, or cut short by one). */
  get staleBytes(): number {
    return this.session?.staleBytes ?? 0;
  }

  /** Opens the channel now (commands otherwise open it on first use). */
  async connect(): Promise<void> {
    await this.open();
  }

  /**
   * Closes the current connection; the next command opens a new one and syncs (the host end
   * of a `server=on` socket chardev takes one client at a time).
   */
  async disconnect(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.close();
  }

  /** Closes the channel. The client cannot be used afterwards. */
  async close(): Promise<CloseReason | undefined> {
    this.closedByUser = true;
    // A connect still under way that fails has nothing to close: its error is not ours to report.
    const session = this.session ?? (await this.opening?.catch(() => undefined));
    return session?.close();
  }
}
