import { QmpDecoder } from '../codec/decoder.js';
import { encodeCommand } from '../codec/encoder.js';
import type {
  QmpTimestamp,
  QmpVersionInfo,
  WireCommand,
  WireError,
  WireEvent,
  WireGreeting,
  WireReturn,
} from '../codec/messages.js';
import {
  QmpCommandError,
  QmpConnectionError,
  QmpDisconnectedError,
  QmpProtocolError,
  QmpTimeoutError,
} from '../errors.js';
import type { QmpChannel } from '../transports/channel.js';

/** connecting → negotiating → ready → closing → closed (closed is final). */
export type SessionState = 'connecting' | 'negotiating' | 'ready' | 'closing' | 'closed';

/** The parsed greeting. */
export interface QmpGreeting {
  readonly version: QmpVersionInfo;
  /** Capabilities the server offered (e.g. `['oob']`). */
  readonly capabilities: readonly string[];
}

/** Why a session ended. */
export interface CloseReason {
  /** True when `close()` was called by this side. */
  readonly byClient: boolean;
  /** What ended it otherwise: socket error, protocol error, EOF (`QmpDisconnectedError`). */
  readonly error: Error | undefined;
}

export interface Logger {
  warn(message: string, detail?: unknown): void;
}

export interface SessionOptions {
  /** Enable `oob` when the server offers it (default true). */
  readonly oob?: boolean;
  /**
   * Send `qmp_capabilities` (default true). False still waits for the greeting: it is for
   * servers that greet but need no negotiation. The guest agent (qemu-ga) sends no greeting
   * at all: talk to it with `AgentSession`.
   */
  readonly negotiate?: boolean;
  /** Longest accepted line (default 64 MiB). */
  readonly maxLineBytes?: number;
  /** Deadline for greeting + negotiation in ms (default 10 000). */
  readonly connectTimeout?: number;
  readonly signal?: AbortSignal;
  /**
   * A reply carrying an id this session never issued: `close` (default) treats it as a
   * protocol error (the stream is not what we think it is), `drop` logs and ignores it.
   * Late replies to commands that timed out or were aborted are always dropped silently.
   */
  readonly onUnknownId?: 'close' | 'drop';
  /**
   * How replies are matched to commands:
   * - `id` (default): every command carries an `id`; replies are matched by it. An error
   *   without id (QEMU's answer to input it could not parse) cannot be attributed and closes
   *   the session.
   * - `order`: in-band commands are sent without `id` and matched in issue order, which
   *   QEMU guarantees for in-band commands (qmp-spec, "Out-of-band execution"); `exec-oob`
   *   commands still carry ids. QEMU 7.2 answers id-less commands about 20% faster (see the
   *   transport benchmark). An id-less error is then the answer to the oldest in-band command.
   */
  readonly correlate?: 'id' | 'order';
  /**
   * In-band commands written before their replies arrive; later ones wait in the client
   * (a timeout or abort removes a waiting command before it is ever sent). Default 8 when
   * `oob` is enabled — QEMU stops reading at 8 queued commands, so an `exec-oob` behind
   * more would not be read (qmp-spec: "at most eight in-band commands in flight") — and
   * unlimited otherwise. `exec-oob` commands are always written at once.
   */
  readonly maxInFlight?: number;
  readonly logger?: Logger;
  /**
   * A tap on the wire, for debugging (`qmpkit --trace`): called with each line written
   * (`send`) and each complete line read (`recv`), without its line ending, exactly as it
   * crossed the channel. Synchronous; a throwing tap is logged, not propagated. When unset,
   * reads and writes take no extra step.
   */
  readonly trace?: (direction: 'send' | 'recv', line: string) => void;
  /** Called for every event, including events that arrive before `ready`. */
  readonly onEvent?: (event: WireEvent) => void;
  /** Called once when the session is closed. */
  readonly onClose?: (reason: CloseReason) => void;
  /**
   * Called with each state the session enters, first `connecting` (from `open`), then e.g.
   * `negotiating`, `ready`, `closing` (only when this side calls `close()`), `closed`. A
   * failed handshake or a peer that hangs up goes straight to `closed`. Synchronous, like
   * `onClose`; a throwing handler is logged, not propagated.
   */
  readonly onStateChange?: (state: SessionState) => void;
}

export interface SendOptions {
  /** Send with `exec-oob` (needs the `oob` capability to be negotiated). */
  readonly oob?: boolean;
  /** Reject with `QmpTimeoutError` after this many ms; a late reply is then dropped. */
  readonly timeout?: number;
  /** Reject with the signal's reason when aborted; a late reply is then dropped. */
  readonly signal?: AbortSignal;
}

/** A command in flight. Kept after timeout/abort as a tombstone until its reply arrives. */
interface Pending {
  readonly command: string;
  readonly args: unknown;
  readonly id: number;
  resolve: ((value: unknown) => void) | undefined;
  reject: ((error: Error) => void) | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  readonly inBand: boolean;
  /** The encoded command while it waits for a free in-flight slot; undefined once sent. */
  line: string | undefined;
}

const noop = (): void => {};
const NO_TIMESTAMP: QmpTimestamp = Object.freeze({ seconds: -1, microseconds: -1 });
const defaultLogger: Logger = {
  warn: (message, detail) => {
    if (detail === undefined) console.warn(`[qmpkit] ${message}`);
    else console.warn(`[qmpkit] ${message}`, detail);
  },
};

/**
 * One QMP connection: greeting, negotiation, ids, the pending table, pipelining and OOB.
 * Untyped (command names and values are plain strings/unknown); `QmpClient` adds types.
 */
export class QmpSession {
  private stateValue: SessionState = 'connecting';
  private greetingValue: QmpGreeting | undefined;
  private enabled: readonly string[] = [];
  private readonly channel: QmpChannel;
  private readonly decoder: QmpDecoder;
  private readonly pending = new Map<number, Pending>();
  /** In-band commands sent without id (`correlate: 'order'`), oldest first from `fifoHead`. */
  private fifo: Pending[] = [];
  private fifoHead = 0;
  private readonly byOrder: boolean;
  /** In-band commands waiting for a free slot (`maxInFlight`), oldest first from the head. */
  private waiting: Pending[] = [];
  private waitingHead = 0;
  /** In-band commands written whose reply has not arrived (tombstones included). */
  private inBandSent = 0;
  private window = Number.POSITIVE_INFINITY;
  /** Commands still awaiting a reply (tombstones excluded). */
  private live = 0;
  private nextId = 1;
  private readonly options: SessionOptions;
  private readonly logger: Logger;
  private closeReason: CloseReason | undefined;
  private resolveClosed: (reason: CloseReason) => void = noop;
  private onGreeting: ((greeting: WireGreeting) => void) | undefined;
  private failConnect: ((error: Error) => void) | undefined;
  /** Resolves once with the reason; never rejects. */
  readonly closed: Promise<CloseReason>;

  private constructor(channel: QmpChannel, options: SessionOptions) {
    this.channel = channel;
    this.options = options;
    this.logger = options.logger ?? defaultLogger;
    this.byOrder = options.correlate === 'order';
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.decoder = new QmpDecoder(
      {
        greeting: (m) => this.handleGreeting(m),
        return: (m) => this.handleReturn(m),
        error: (m) => this.handleError(m),
        event: (m) => this.handleEvent(m),
        command: (m) => this.handleCommand(m),
        protocolError: (e) => this.fail(e),
      },
      // Socket reads and WebSocket messages arrive in fresh buffers that nobody reuses.
      options.maxLineBytes === undefined
        ? { chunksAreImmutable: true }
        : { maxLineBytes: options.maxLineBytes, chunksAreImmutable: true },
    );
  }

  /**
   * Runs the handshake on an open channel: waits for the greeting, then negotiates
   * (`qmp_capabilities`, with `enable: ['oob']` when offered and wanted). Resolves when the
   * session is `ready`; rejects with a typed error and leaves nothing open otherwise.
   */
  static async open(channel: QmpChannel, options: SessionOptions = {}): Promise<QmpSession> {
    const session = new QmpSession(channel, options);
    session.notifyState();
    await session.handshake();
    return session;
  }

  get state(): SessionState {
    return this.stateValue;
  }

  private setState(state: SessionState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.notifyState();
  }

  private notifyState(): void {
    try {
      this.options.onStateChange?.(this.stateValue);
    } catch (error) {
      this.logger.warn('onStateChange handler threw', error);
    }
  }
  get greeting(): QmpGreeting | undefined {
    return this.greetingValue;
  }
  /** Capabilities enabled by negotiation. */
  get capabilities(): readonly string[] {
    return this.enabled;
  }
  get label(): string {
    return this.channel.label;
  }
  /** Commands awaiting a reply. */
  get pendingCount(): number {
    return this.live;
  }

  private async handshake(): Promise<void> {
    const timeoutMs = this.options.connectTimeout ?? 10_000;
    const signal = this.options.signal;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const failed = new Promise<never>((_, reject) => {
      this.failConnect = reject;
    });
    failed.catch(noop);
    try {
      const greeted = new Promise<WireGreeting>((resolve) => {
        this.onGreeting = resolve;
      });
      timer = setTimeout(() => {
        this.fail(
          new QmpConnectionError(
            this.channel.label,
            'ETIMEDOUT',
            `no QMP ${this.stateValue === 'connecting' ? 'greeting' : 'negotiation reply'} within ${timeoutMs} ms`,
            { cause: new QmpTimeoutError('connect', timeoutMs) },
          ),
        );
      }, timeoutMs);
      if (signal) {
        onAbort = () =>
          this.fail(
            new QmpConnectionError(this.channel.label, 'ABORT_ERR', 'connect aborted', {
              cause: signal.reason,
            }),
          );
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
      this.channel.start({
        data: this.options.trace ? this.tracedData() : (chunk) => this.decoder.push(chunk),
        close: (error) => this.channelClosed(error),
      });
      const greeting = await Promise.race([greeted, failed]);
      // The greeting and a fatal error may arrive in the same chunk.
      this.throwIfClosed();
      this.greetingValue = {
        version: greeting.QMP.version,
        capabilities: greeting.QMP.capabilities,
      };
      if (this.options.negotiate === false) {
        this.window = this.options.maxInFlight ?? Number.POSITIVE_INFINITY;
        this.setState('ready');
        return;
      }
      this.setState('negotiating');
      const enable =
        this.options.oob !== false && greeting.QMP.capabilities.includes('oob') ? ['oob'] : [];
      try {
        await Promise.race([
          this.send('qmp_capabilities', enable.length > 0 ? { enable } : undefined),
          failed,
        ]);
      } catch (error) {
        if (error instanceof QmpCommandError) {
          throw this.fail(
            new QmpProtocolError(
              'negotiation-failed',
              `qmp_capabilities failed: ${error.desc}`,
              undefined,
              {
                cause: error,
              },
            ),
          );
        }
        throw error;
      }
      this.throwIfClosed();
      this.enabled = enable;
      this.window =
        this.options.maxInFlight ?? (enable.includes('oob') ? 8 : Number.POSITIVE_INFINITY);
      this.setState('ready');
    } catch (error) {
      const reason = this.closeReason?.error ?? error;
      this.fail(reason instanceof Error ? reason : new Error(String(reason)));
      throw reason;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      this.failConnect = undefined;
      this.onGreeting = undefined;
    }
  }

  /**
   * Sends a command and resolves with its `return` value. Many may be in flight at once;
   * replies are matched by id. Rejects with `QmpCommandError`, `QmpTimeoutError`, the
   * signal's reason, or `QmpDisconnectedError` (outcome unknown).
   */
  send(command: string, args?: unknown, options?: SendOptions): Promise<unknown> {
    const state = this.stateValue;
    if (state === 'closed' || state === 'closing') {
      return Promise.reject(new QmpDisconnectedError(command, { cause: this.closeReason?.error }));
    }
    if (state === 'connecting' || (state === 'negotiating' && command !== 'qmp_capabilities')) {
      return Promise.reject(new Error(`QMP session is ${state}: cannot send '${command}' yet`));
    }
    const oob = options?.oob === true;
    if (oob && !this.enabled.includes('oob')) {
      return Promise.reject(
        new Error(`cannot send '${command}' with exec-oob: the oob capability is not enabled`),
      );
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    const inOrder = this.byOrder && !oob;
    const line = encodeCommand(command, args, inOrder ? undefined : id, oob);
    return new Promise((resolve, reject) => {
      const entry: Pending = {
        command,
        args,
        id,
        resolve,
        reject,
        timer: undefined,
        signal: undefined,
        onAbort: undefined,
        inBand: !oob,
        line: undefined,
      };
      const timeout = options?.timeout;
      if (timeout !== undefined && timeout !== Number.POSITIVE_INFINITY) {
        entry.timer = setTimeout(() => {
          this.abandon(entry, new QmpTimeoutError(command, timeout));
        }, timeout);
      }
      if (signal) {
        entry.signal = signal;
        entry.onAbort = () => this.abandon(entry, signal.reason);
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      if (!inOrder) this.pending.set(id, entry);
      this.live++;
      if (!oob && this.inBandSent >= this.window) {
        entry.line = line;
        this.waiting.push(entry);
      } else this.transmit(entry, line);
    });
  }

  private transmit(entry: Pending, line: string): void {
    if (entry.inBand) {
      this.inBandSent++;
      if (this.byOrder) this.fifo.push(entry);
    }
    this.channel.write(line);
    if (this.options.trace) this.traceLine('send', line);
  }

  private traceLine(direction: 'send' | 'recv', line: string): void {
    try {
      this.options.trace?.(direction, line.replace(/\r?\n$/, ''));
    } catch (error) {
      this.logger.warn('trace handler threw', error);
    }
  }

  /** The data handler with the tap: cuts the received bytes into lines for `trace`. */
  private tracedData(): (chunk: Uint8Array) => void {
    const text = new TextDecoder();
    let partial = '';
    return (chunk) => {
      partial += text.decode(chunk, { stream: true });
      let start = 0;
      for (let nl = partial.indexOf('\n'); nl !== -1; nl = partial.indexOf('\n', start)) {
        const line = partial.slice(start, partial[nl - 1] === '\r' ? nl - 1 : nl);
        start = nl + 1;
        if (line.trim() !== '') this.traceLine('recv', line);
      }
      partial = partial.slice(start);
      this.decoder.push(chunk);
    };
  }

  /** A reply to an in-band command arrived: a slot is free for a waiting command. */
  private replied(entry: Pending): void {
    if (!entry.inBand) return;
    this.inBandSent--;
    const waiting = this.waiting;
    while (this.inBandSent < this.window && this.waitingHead < waiting.length) {
      const next = waiting[this.waitingHead]!;
      waiting[this.waitingHead] = undefined as unknown as Pending;
      this.waitingHead++;
      const line = next.line;
      next.line = undefined;
      if (line !== undefined && next.resolve !== undefined) this.transmit(next, line);
    }
    if (this.waitingHead === waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    } else if (this.waitingHead > 1024 && this.waitingHead * 2 > waiting.length) {
      this.waiting = waiting.slice(this.waitingHead);
      this.waitingHead = 0;
    }
  }

  /** Timeout/abort: reject now, keep the id as a tombstone so the late reply is dropped. */
  private abandon(entry: Pending, error: unknown): void {
    const reject = entry.reject;
    if (!reject) return;
    if (entry.line !== undefined) {
      // Never sent: no tombstone needed, QEMU never sees it.
      entry.line = undefined;
      this.pending.delete(entry.id);
    }
    this.settle(entry);
    reject(error instanceof Error ? error : new Error(String(error)));
  }

  private settle(entry: Pending): void {
    entry.resolve = undefined;
    entry.reject = undefined;
    this.live--;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
  }

  /** Looks up the pending entry for a reply id; handles unknown ids. */
  private take(id: unknown, raw: () => string): Pending | undefined {
    if (id === undefined && this.byOrder) {
      const next = this.fifo[this.fifoHead];
      if (next !== undefined) {
        this.fifo[this.fifoHead] = undefined as unknown as Pending;
        this.fifoHead++;
        if (this.fifoHead === this.fifo.length) {
          this.fifo = [];
          this.fifoHead = 0;
        } else if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
          this.fifo = this.fifo.slice(this.fifoHead);
          this.fifoHead = 0;
        }
        return next;
      }
    }
    const entry = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (entry !== undefined) {
      this.pending.delete(id as number);
      return entry;
    }
    if (typeof id === 'number' && Number.isInteger(id) && id > 0 && id < this.nextId) {
      // Issued by us, but already answered: a duplicate. Drop it.
      this.logger.warn(`dropping a second reply for id ${id}`);
      return undefined;
    }
    const error = new QmpProtocolError(
      'unknown-id',
      `reply with an id this session never issued: ${JSON.stringify(id) ?? 'none'}`,
      raw(),
    );
    if (this.options.onUnknownId === 'drop') {
      this.logger.warn(error.message, error.raw);
      return undefined;
    }
    this.fail(error);
    return undefined;
  }

  private handleReturn(message: WireReturn): void {
    const entry = this.take(message.id, () => JSON.stringify(message));
    if (entry === undefined) return;
    this.replied(entry);
    const resolve = entry.resolve;
    if (resolve === undefined) return; // tombstone: timed out or aborted earlier
    this.settle(entry);
    resolve(message.return);
  }

  private handleError(message: WireError): void {
    if (message.id === undefined && !this.byOrder) {
      // QEMU could not parse what it read, so it could not read an id either (qmp-spec
      // "Error"). We never send invalid JSON, so the byte stream is out of sync: which
      // command failed is unknowable and later commands may have been eaten. Close.
      this.fail(
        new QmpProtocolError(
          'unattributed-error',
          `QEMU reported an error without id (${message.error.class}: ${message.error.desc})`,
          JSON.stringify(message),
        ),
      );
      return;
    }
    const entry = this.take(message.id, () => JSON.stringify(message));
    if (entry === undefined) return;
    this.replied(entry);
    const reject = entry.reject;
    if (reject === undefined) return;
    this.settle(entry);
    reject(
      new QmpCommandError({
        errorClass: message.error.class,
        desc: message.error.desc,
        command: entry.command,
        arguments: entry.args,
        id: entry.id,
      }),
    );
  }

  private handleGreeting(message: WireGreeting): void {
    const onGreeting = this.onGreeting;
    if (this.stateValue === 'connecting' && onGreeting) {
      this.onGreeting = undefined;
      onGreeting(message);
      return;
    }
    this.fail(
      new QmpProtocolError('unexpected-message', 'second QMP greeting', JSON.stringify(message)),
    );
  }

  private handleEvent(message: WireEvent): void {
    const onEvent = this.options.onEvent;
    if (!onEvent) return;
    if (typeof message.timestamp !== 'object' || message.timestamp === null) {
      // QEMU always sends one; other peers may not. -1/-1 is QEMU's own "unknown time".
      (message as { timestamp: QmpTimestamp }).timestamp = NO_TIMESTAMP;
    }
    try {
      onEvent(message);
    } catch (error) {
      this.logger.warn(`event handler threw for ${message.event}`, error);
    }
  }

  private handleCommand(message: WireCommand): void {
    this.fail(
      new QmpProtocolError(
        'unexpected-message',
        'the peer sent a command: it is a client, not a QMP server',
        JSON.stringify(message),
      ),
    );
  }

  private channelClosed(error: Error | undefined): void {
    if (this.stateValue === 'closed') return;
    // Bytes left without a newline: the peer closed mid-message.
    this.decoder.end();
    if (this.isClosed()) return;
    if (this.stateValue === 'closing') {
      this.finish({ byClient: true, error: undefined });
      return;
    }
    const cause =
      error ??
      new QmpDisconnectedError(undefined, {
        cause: new Error(`${this.channel.label}: the peer closed the connection`),
      });
    if (this.stateValue === 'connecting' || this.stateValue === 'negotiating') {
      this.finish({
        byClient: false,
        error: new QmpConnectionError(
          this.channel.label,
          (error as NodeJS.ErrnoException | undefined)?.code ?? 'ECONNRESET',
          `connection closed during the QMP ${this.stateValue === 'connecting' ? 'greeting' : 'negotiation'}`,
          { cause },
        ),
      });
      return;
    }
    this.finish({ byClient: false, error: cause });
  }

  /** Removes and returns every entry (live and tombstones) in issue order. */
  private drainPending(): Pending[] {
    const all = new Set<Pending>([
      ...this.fifo.slice(this.fifoHead),
      ...this.waiting.slice(this.waitingHead),
      ...this.pending.values(),
    ]);
    this.pending.clear();
    this.fifo = [];
    this.fifoHead = 0;
    this.waiting = [];
    this.waitingHead = 0;
    this.inBandSent = 0;
    return [...all].sort((a, b) => a.id - b.id);
  }

  private throwIfClosed(): void {
    if (this.isClosed()) throw this.closeReason?.error ?? new QmpDisconnectedError(undefined);
  }

  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  /** Fatal error: close everything; returns the error for convenience. */
  private fail(error: Error): Error {
    if (this.stateValue !== 'closed') this.finish({ byClient: false, error });
    return error;
  }

  private finish(reason: CloseReason): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    this.closeReason = reason;
    this.decoder.stop();
    this.channel.destroy();
    const entries = this.drainPending();
    for (const entry of entries) {
      const reject = entry.reject;
      if (!reject) continue;
      this.settle(entry);
      reject(new QmpDisconnectedError(entry.command, { cause: reason.error }));
    }
    this.live = 0;
    this.failConnect?.(reason.error ?? new QmpDisconnectedError(undefined));
    this.resolveClosed(reason);
    try {
      this.options.onClose?.(reason);
    } catch (error) {
      this.logger.warn('onClose handler threw', error);
    }
  }

  /**
   * Closes the session. Pending commands reject with `QmpDisconnectedError`. Resolves when
   * the channel is closed (at most `graceMs` later, then it is destroyed).
   */
  async close(graceMs = 1000): Promise<CloseReason> {
    if (this.stateValue === 'closed') return this.closed;
    const entries = this.drainPending();
    for (const entry of entries) {
      const reject = entry.reject;
      if (!reject) continue;
      this.settle(entry);
      reject(new QmpDisconnectedError(entry.command, { cause: new Error('closed by the client') }));
    }
    this.setState('closing');
    this.channel.end();
    const timer = setTimeout(() => this.finish({ byClient: true, error: undefined }), graceMs);
    timer.unref?.();
    const reason = await this.closed;
    clearTimeout(timer);
    return reason;
  }
}
