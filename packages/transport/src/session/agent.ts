import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { AgentDecoder } from '../codec/agent.js';
import { encodeCommand } from '../codec/encoder.js';
import {
  AgentSyncError,
  QmpCommandError,
  QmpDisconnectedError,
  QmpProtocolError,
  QmpTimeoutError,
} from '../errors.js';
import { connectSocket } from '../transports/dial.node.js';
import type { CloseReason, Logger } from './session.js';

/**
 * A session with a QEMU guest agent (qemu-ga) — QMP's wire format without QMP's session:
 * no greeting, no capabilities negotiation, one command at a time (the agent runs them in
 * order), and a pipe that outlives connections. So the session synchronises before its
 * first command and after anything that may leave bytes in the pipe (a timeout, an abort, an
 * undecodable reply, the agent restarting): it sends a 0xFF byte (which resets the agent's
 * JSON parser, in case a previous client left half a command), then `guest-sync-delimited`
 * with a random id, drops every byte up to the agent's 0xFF marker and every reply that
 * does not carry that id (qemu-ga(8), "guest-sync-delimited").
 */
export interface AgentSessionOptions {
  /** Label for messages (default `unix:<path>` or `duplex`). */
  readonly label?: string;
  /** Longest accepted reply line (default 64 MiB). */
  readonly maxLineBytes?: number;
  readonly logger?: Logger;
  /** A tap on the wire, for debugging: each line written and each line decoded. */
  readonly trace?: (direction: 'send' | 'recv', line: string) => void;
  /** Called once when the channel is gone. */
  readonly onClose?: (reason: CloseReason) => void;
  /** Where sync ids come from (default: random in [1, 2^31)); tests pin it. */
  readonly syncId?: () => number;
}

export interface AgentSendOptions {
  /** Milliseconds until `QmpTimeoutError` (default: no limit); the session resyncs next time. */
  readonly timeout?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** How a command that sends no reply on success (`guest-shutdown`, `guest-suspend-*`) ended. */
export type NoReplyOutcome =
  /** The agent went on to answer the sync sent behind it: it accepted the command. */
  | 'accepted'
  /** The channel (or the agent, per `agentGone`) closed: the guest went down as asked. */
  | 'closed'
  /** Neither an error nor anything else within the timeout: success by the protocol's rules. */
  | 'silent';

/**
 * The operation in flight. A class with the settling logic on its prototype, so a command
 * allocates one object and its promise, not a set of closures (a ping is dominated by them).
 */
class Op {
  readonly stale: unknown[] = [];
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  constructor(
    readonly kind: 'sync' | 'command' | 'no-reply',
    readonly command: string,
    readonly args: unknown,
    /** The command's id, or the sync id for `sync`. */
    readonly id: number,
    /** For `no-reply`: the id of the sync sent right behind the command. */
    readonly syncId: number,
    private readonly settle: (value: unknown) => void,
    private readonly fail: (error: Error) => void,
    private readonly ended: (op: Op, timedOut: boolean) => void,
  ) {}

  resolve(value: unknown, timedOut = false): void {
    this.finish(timedOut);
    this.settle(value);
  }

  reject(error: Error, timedOut = false): void {
    this.finish(timedOut);
    this.fail(error);
  }

  private finish(timedOut: boolean): void {
    clearTimeout(this.timer);
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    this.ended(this, timedOut);
  }
}

/** The timer of an operation (passed its op: no closure per command). */
function expire(op: Op, timeout: number): void {
  if (op.kind === 'no-reply') op.resolve('silent' satisfies NoReplyOutcome, true);
  else if (op.kind === 'sync') op.reject(new AgentSyncError(op.id, timeout, op.stale), true);
  else op.reject(new QmpTimeoutError(op.command, timeout), true);
}

const noop = (): void => {};
const MAX_STALE = 16;
const defaultLogger: Logger = {
  warn: (message, detail) => {
    if (detail === undefined) console.warn(`[qmpkit] ${message}`);
    else console.warn(`[qmpkit] ${message}`, detail);
  },
};

export class AgentSession {
  readonly label: string;
  /** Resolves once with the reason the channel closed; never rejects. */
  readonly closed: Promise<CloseReason>;
  private readonly stream: Duplex;
  private readonly decoder: AgentDecoder;
  private readonly options: AgentSessionOptions;
  private readonly logger: Logger;
  private queue: Promise<unknown> = Promise.resolve();
  /** Operations started or waiting in `exclusive` and not settled yet. */
  private queued = 0;
  private current: Op | undefined;
  private synced = false;
  private closeReason: CloseReason | undefined;
  private resolveClosed: (reason: CloseReason) => void = noop;
  private nextId: number;
  private closing = false;

  private constructor(stream: Duplex, options: AgentSessionOptions) {
    this.stream = stream;
    this.options = options;
    this.label = options.label ?? 'duplex';
    this.logger = options.logger ?? defaultLogger;
    this.nextId = randomInt(1, 2 ** 30);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.decoder = new AgentDecoder(
      {
        message: (value, line, delimited) => this.onMessage(value, line, delimited),
        protocolError: (error) => this.onProtocolError(error),
      },
      options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes },
    );
    let error: Error | undefined;
    stream.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    stream.on('error', (e: Error) => {
      error ??= e;
      if (!stream.destroyed) stream.destroy();
    });
    stream.on('end', () => {
      if (!stream.destroyed) stream.destroy();
    });
    stream.on('close', () => this.channelClosed(error));
    if (stream.destroyed) queueMicrotask(() => this.channelClosed(error));
  }

  /** A session over an open stream (a connected socket, a socketpair end, a test double). */
  static attach(stream: Duplex, options: AgentSessionOptions = {}): AgentSession {
    return new AgentSession(stream, options);
  }

  /** Connects to the host end of the agent's chardev (`-chardev socket,path=…,server=on`). */
  static async connect(
    path: string,
    options: AgentSessionOptions & { readonly signal?: AbortSignal } = {},
  ): Promise<AgentSession> {
    const label = options.label ?? `unix:${path}`;
    const socket = await connectSocket({ path }, label, options.signal);
    return new AgentSession(socket, { ...options, label });
  }

  /** False until a sync succeeds, and again after anything that may have left stale bytes. */
  get isSynced(): boolean {
    return this.synced;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Bytes dropped as stale so far (before a 0xFF marker, or lines cut short by one). */
  get staleBytes(): number {
    return this.decoder.staleBytes;
  }

  /**
   * Marks the stream as untrusted: the next command syncs first. For callers that learn of
   * an agent restart out of band (QMP's `VSERPORT_CHANGE`).
   */
  invalidate(): void {
    this.synced = false;
  }

  /**
   * The agent went away while the channel stayed open (QMP's `VSERPORT_CHANGE` with
   * `open: false`: qemu-ga died or closed its port). The command in flight ends at once —
   * with `error`, or as `closed` for a command that sends no reply on success — and the
   * next command syncs first.
   */
  agentGone(error: (command: string) => Error): void {
    this.synced = false;
    const op = this.current;
    if (op === undefined) return;
    if (op.kind === 'no-reply') op.resolve('closed' satisfies NoReplyOutcome);
    else op.reject(error(op.command));
  }

  /** Synchronises now (`guest-sync-delimited` with a random id). */
  sync(options: AgentSendOptions = {}): Promise<void> {
    return this.exclusive(async () => {
      await this.runSync(options);
    });
  }

  /**
   * Sends one command and resolves with its `return` value; syncs first when needed. Rejects
   * with `QmpCommandError` (the agent's error), `QmpTimeoutError`, `AgentSyncError`, the
   * signal's reason, `QmpProtocolError` (an undecodable reply) or `QmpDisconnectedError`.
   */
  send(command: string, args?: unknown, options: AgentSendOptions = {}): Promise<unknown> {
    return this.exclusive(() => {
      // In sync (the usual case): straight to the command, no deadline to split.
      if (this.synced) return this.run('command', command, args, options);
      const deadline = deadlineOf(options.timeout);
      return this.runSync({ ...options, timeout: left(deadline) }).then(() =>
        this.run('command', command, args, { ...options, timeout: left(deadline) }),
      );
    });
  }

  /**
   * Sends a command that answers only on failure (`guest-shutdown`, `guest-suspend-*`), with
   * a sync right behind it: an error reply rejects; the sync's reply, the channel closing or
   * the agent going away, or silence until the timeout, all mean success.
   */
  sendNoReply(
    command: string,
    args?: unknown,
    options: AgentSendOptions = {},
  ): Promise<NoReplyOutcome> {
    return this.exclusive(async () => {
      const deadline = deadlineOf(options.timeout);
      if (!this.synced) await this.runSync({ ...options, timeout: left(deadline) });
      return (await this.run('no-reply', command, args, {
        ...options,
        timeout: left(deadline),
      })) as NoReplyOutcome;
    });
  }

  /** Closes the channel; a command in flight rejects with `QmpDisconnectedError`. */
  async close(): Promise<CloseReason> {
    if (this.closeReason) return this.closeReason;
    this.closing = true;
    this.stream.destroy();
    return this.closed;
  }

  /**
   * Runs `fn` once every operation queued before it has settled. With nothing queued (the
   * usual case: one caller awaiting each command) it starts at once rather than a microtask
   * later behind the queue's promise.
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    let run: Promise<T>;
    if (this.queued === 0) {
      try {
        run = fn();
      } catch (error) {
        run = Promise.reject(error);
      }
    } else run = this.queue.then(fn, fn);
    this.queued++;
    this.queue = run.then(this.dequeue, this.dequeue);
    return run;
  }

  private readonly dequeue = (): void => {
    this.queued--;
  };

  private async runSync(options: AgentSendOptions): Promise<void> {
    await this.run('sync', 'guest-sync-delimited', undefined, options);
    this.synced = true;
  }

  private run(
    kind: Op['kind'],
    command: string,
    args: unknown,
    options: AgentSendOptions,
  ): Promise<unknown> {
    if (this.closeReason)
      return Promise.reject(new QmpDisconnectedError(command, { cause: this.closeReason.error }));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    // A plain command needs no sync id (the random source is the costliest part of a ping).
    const syncId = kind === 'command' ? 0 : (this.options.syncId?.() ?? randomInt(1, 2 ** 31));
    const id = kind === 'sync' ? syncId : this.nextId++;
    // Encoded before anything is set up: arguments JSON cannot encode reject with nothing
    // left behind (no timer, no operation in flight).
    let line: string;
    try {
      line =
        kind === 'sync'
          ? encodeCommand('guest-sync-delimited', { id })
          : encodeCommand(command, args, id);
    } catch (error) {
      return Promise.reject(error);
    }
    let settle!: (value: unknown) => void;
    let fail!: (error: Error) => void;
    const promise = new Promise<unknown>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const op = new Op(kind, command, args, id, syncId, settle, fail, this.opEnded);
    const timeout = options.timeout;
    if (timeout !== undefined && timeout !== Number.POSITIVE_INFINITY)
      op.timer = setTimeout(expire, Math.max(0, timeout), op, timeout);
    if (signal) {
      op.signal = signal;
      op.onAbort = () => {
        this.synced = false;
        op.reject(
          signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)),
        );
      };
      signal.addEventListener('abort', op.onAbort, { once: true });
    }
    this.current = op;
    if (kind === 'sync') {
      // 0xFF resets the agent's parser; then drop everything up to the agent's own 0xFF.
      this.decoder.seekDelimiter();
      this.write(Buffer.from([0xff]), '\\xff');
      this.write(line);
    } else {
      this.write(line);
      // Its error reply (if any) comes as a plain line before the sync's 0xFF-led reply.
      if (kind === 'no-reply') this.write(encodeCommand('guest-sync-delimited', { id: syncId }));
    }
    return promise;
  }

  /** An operation settled: it is no longer the one in flight; a timeout also unsyncs. */
  private readonly opEnded = (op: Op, timedOut: boolean): void => {
    if (timedOut) this.synced = false;
    if (this.current === op) this.current = undefined;
  };

  private write(data: string | Buffer, traced?: string): void {
    if (this.stream.destroyed || this.stream.writableEnded) return;
    this.stream.write(data);
    if (this.options.trace) {
      try {
        this.options.trace('send', traced ?? String(data).replace(/\n$/, ''));
      } catch (error) {
        this.logger.warn('trace handler threw', error);
      }
    }
  }

  private onMessage(value: Record<string, unknown>, line: string, delimited: boolean): void {
    if (this.options.trace) {
      try {
        this.options.trace('recv', delimited ? `\\xff${line}` : line);
      } catch (error) {
        this.logger.warn('trace handler threw', error);
      }
    }
    const op = this.current;
    if (op === undefined) {
      // Nothing asked: a late reply to a command that timed out. The next command syncs.
      this.synced = false;
      return;
    }
    if (op.kind === 'sync') {
      if (value.return === op.id && 'return' in value) op.resolve(undefined);
      else if (op.stale.length < MAX_STALE) op.stale.push(value);
      return;
    }
    const error = value.error as { class?: unknown; desc?: unknown } | undefined;
    const forUs = value.id === undefined || value.id === op.id;
    if (op.kind === 'no-reply') {
      if (forUs && typeof error === 'object' && error !== null && !delimited) {
        // The sync behind it is still in the pipe; it is dropped as stale by the next sync.
        this.synced = false;
        op.reject(this.commandError(op, error, value.id));
      } else if (delimited && value.return === op.syncId) {
        this.synced = true;
        op.resolve('accepted' satisfies NoReplyOutcome);
      }
      return;
    }
    if (!forUs || delimited) {
      // A reply to an earlier command (its id) or a stray sync reply: not ours.
      this.logger.warn(`guest agent: dropping a reply that is not for ${op.command}`, line);
      return;
    }
    if ('return' in value) op.resolve(value.return);
    else if (typeof error === 'object' && error !== null)
      op.reject(this.commandError(op, error, value.id));
    else {
      this.synced = false;
      op.reject(
        new QmpProtocolError(
          'unexpected-reply',
          `${op.command}: the guest agent answered neither "return" nor "error"`,
          line,
        ),
      );
    }
  }

  private commandError(
    op: Op,
    error: { class?: unknown; desc?: unknown },
    id: unknown,
  ): QmpCommandError {
    return new QmpCommandError({
      errorClass: typeof error.class === 'string' ? error.class : 'GenericError',
      desc: typeof error.desc === 'string' ? error.desc : JSON.stringify(error),
      command: op.command,
      arguments: op.args,
      id: id ?? op.id,
    });
  }

  private onProtocolError(error: QmpProtocolError): void {
    const op = this.current;
    if (op?.kind === 'sync') {
      // Garbage before our sync reply: that is what syncing is for.
      if (op.stale.length < MAX_STALE) op.stale.push({ protocolError: error.code, raw: error.raw });
      return;
    }
    this.synced = false;
    if (op?.kind === 'command')
      op.reject(
        new QmpProtocolError(error.code, `${op.command}: ${error.message}`, error.raw, {
          cause: error,
        }),
      );
  }

  private channelClosed(error: Error | undefined): void {
    if (this.closeReason) return;
    const partial = this.decoder.bufferedBytes;
    const reason: CloseReason = {
      byClient: this.closing,
      error:
        error ??
        (this.closing
          ? undefined
          : new QmpDisconnectedError(undefined, {
              cause: new Error(
                `${this.label}: the peer closed the channel${partial > 0 ? ` in the middle of a reply (${partial} bytes)` : ''}`,
              ),
            })),
    };
    this.closeReason = reason;
    this.synced = false;
    const op = this.current;
    if (op?.kind === 'no-reply' && !this.closing) op.resolve('closed' satisfies NoReplyOutcome);
    else if (op) {
      const cause =
        partial > 0
          ? new QmpProtocolError(
              'truncated',
              `${this.label}: the channel closed in the middle of a reply (${partial} bytes)`,
            )
          : (reason.error ?? new Error('closed by the client'));
      op.reject(new QmpDisconnectedError(op.command, { cause }));
    }
    this.resolveClosed(reason);
    try {
      this.options.onClose?.(reason);
    } catch (e) {
      this.logger.warn('onClose handler threw', e);
    }
  }
}

function deadlineOf(timeout: number | undefined): number | undefined {
  return timeout === undefined || timeout === Number.POSITIVE_INFINITY
    ? undefined
    : performance.now() + timeout;
}

function left(deadline: number | undefined): number | undefined {
  return deadline === undefined ? undefined : Math.max(0, deadline - performance.now());
}
