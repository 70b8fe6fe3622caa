import type { Commands, DefaultQemuVersion, Events } from '@qmpkit/qapi';
import {
  type SchemaTables,
  type ValidationProblem,
  validateArgs,
  validateEvent,
  validateReturn,
} from '@qmpkit/qapi/runtime-v1';
import { dial } from '#dial';
import type { WireEvent } from '../codec/messages.js';
import {
  isQmpConnectionError,
  QmpConnectionError,
  QmpDisconnectedError,
  QmpHmpError,
  QmpTimeoutError,
  QmpValidationError,
} from '../errors.js';
import {
  type CloseReason,
  type Logger,
  type QmpGreeting,
  QmpSession,
  type SendOptions,
  type SessionState,
} from '../session/session.js';
import { formatAddress, parseAddress, type QmpAddress } from '../transports/address.js';
import type { DialOptions } from '../transports/websocket.js';
import { askSchema } from './capability.js';
import {
  EventExpectation,
  EventHub,
  EventStream,
  type EventStreamOptions,
  listener,
  type WaitOptions,
} from './events.js';
import { type JobOptions, type JobResult, runJob } from './jobs.js';
import { SchemaIndex, type SchemaQuery, type UntypedSchemaQuery } from './schema.js';
import type {
  ArgsOf,
  CommandMap,
  CommandName,
  EventMap,
  EventName,
  ExecuteOptions,
  ExecuteRest,
  HasName,
  HasSubject,
  JobCommandName,
  OobCommandName,
  QmpBindings,
  QmpEvent,
  ReturnOf,
} from './types.js';

export type ValidateMode = 'off' | 'warn' | 'strict';

/** What `warn` mode reports (and `strict` mode reports for events). */
export interface ValidationReport {
  readonly direction: 'arguments' | 'return' | 'event';
  /** Command or event name. */
  readonly name: string;
  readonly problems: readonly ValidationProblem[];
}

export interface ReconnectOptions {
  /** First delay in ms (default 100), multiplied by `factor` (default 2) up to `maxDelay` (5000). */
  readonly initialDelay?: number;
  readonly maxDelay?: number;
  readonly factor?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  readonly maxAttempts?: number;
  /** Called after every successful reconnect. */
  readonly onReconnect?: (attempt: number) => void;
  /**
   * Longest wait, in ms, of a call issued while reconnecting (default 30 000). A call's own
   * `timeout` bounds it too. When it passes, the call rejects with `QmpDisconnectedError`
   * (cause: `QmpTimeoutError`); the reconnect goes on.
   */
  readonly waitTimeout?: number;
}

export interface ConnectOptions<C, E> extends DialOptions {
  /**
   * The QEMU version's bindings (types, and tables for validation). Default: the default
   * version of `@qmpkit/qapi` (its root export).
   */
  readonly bindings?: QmpBindings<C, E>;
  /** Deadline for connect + greeting + negotiation in ms (default 10 000). */
  readonly connectTimeout?: number;
  /**
   * Retry a refused or missing unix/TCP listener (`ECONNREFUSED`, `ENOENT`) until
   * `connectTimeout`, for a QEMU that was just spawned: its socket file appears at `bind()`,
   * a moment before it listens. Default false: a refused connection fails at once.
   */
  readonly waitForListener?: boolean;
  /** Enable `oob` when offered (default true). */
  readonly oob?: boolean;
  /** Longest accepted QMP line in bytes (default 64 MiB). */
  readonly maxLineBytes?: number;
  /** Check arguments, replies and events against the bindings' tables (default `off`). */
  readonly validate?: ValidateMode;
  /** Where `warn` reports go (default: `logger.warn`). */
  readonly onValidation?: (report: ValidationReport) => void;
  /** In-band commands in flight before the client queues: see `SessionOptions.maxInFlight`. */
  readonly maxInFlight?: number;
  /** Reply matching, `id` (default) or `order`: see `SessionOptions.correlate`. */
  readonly correlate?: 'id' | 'order';
  /** See `SessionOptions.onUnknownId` (default `close`). */
  readonly onUnknownId?: 'close' | 'drop';
  /** Reconnect after an unexpected disconnect (never for `duplex` addresses). */
  readonly reconnect?: boolean | ReconnectOptions;
  readonly logger?: Logger;
  /** A tap on the QMP wire, lines sent and received: see `SessionOptions.trace`. */
  readonly trace?: (direction: 'send' | 'recv', line: string) => void;
  /** Called for every event, also those that arrive during the handshake. */
  readonly onEvent?: (event: QmpEvent<E>) => void;
}

/**
 * Connects to QMP and returns a ready, typed client: typed for the default QEMU version of
 * `@qmpkit/qapi` (its root export), or for the version whose `bindings` you pass.
 *
 * ```ts
 * const qmp = await connect('unix:/run/vm/qmp.sock');
 * const status = await qmp.execute('query-status'); // typed as the default version's reply
 * ```
 * A client typed for a range of versions: `connect` of `@qmpkit/transport/versions`.
 */
export function connect(
  address: string | QmpAddress,
  options?: ConnectOptions<Commands, Events>,
): Promise<QmpClient>;
export function connect<C extends CommandMap<C>, E extends EventMap<E>>(
  address: string | QmpAddress,
  options: ConnectOptions<C, E> & { readonly bindings: QmpBindings<C, E> },
): Promise<QmpClient<C, E, never>>;
export function connect<C, E>(
  address: string | QmpAddress,
  options: ConnectOptions<C, E> = {},
  // `unknown`: the client is invariant in its versions, so no one client type fits both overloads.
): Promise<unknown> {
  return openClient<C, E, string>(address, options);
}

/**
 * @internal `connect` for any maps and version set: the maps are type level only, so one
 * implementation serves every typing (`@qmpkit/transport/versions` uses it for ranges).
 */
export async function openClient<C, E, V extends string>(
  address: string | QmpAddress,
  options: ConnectOptions<C, E>,
): Promise<QmpClient<C, E, V>> {
  const parsed = typeof address === 'string' ? parseAddress(address) : address;
  const mode = options.validate ?? 'off';
  let tables = options.bindings?.tables;
  if (mode !== 'off' && tables === undefined) {
    tables = (await import('@qmpkit/qapi')).tables;
  }
  const logger = options.logger ?? {
    warn: (message: string, detail?: unknown) =>
      detail === undefined
        ? console.warn(`[qmpkit] ${message}`)
        : console.warn(`[qmpkit] ${message}`, detail),
  };
  const client = new QmpClient<C, E, V>(parsed, options, logger, mode, tables);
  await client.start();
  return client;
}

/** Dials again while nothing listens yet (10 ms, doubling to 200 ms) until `signal` aborts. */
async function retryUntilListening<T>(dialOnce: () => Promise<T>, signal: AbortSignal): Promise<T> {
  let pause = 10;
  for (;;) {
    try {
      return await dialOnce();
    } catch (error) {
      const code = isQmpConnectionError(error) ? error.code : undefined;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || signal.aborted) throw error;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, pause);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
    pause = Math.min(pause * 2, 200);
  }
}

/** `AbortSignal.any` for two signals (that API needs Node ≥ 20.3). */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const forward = (from: AbortSignal) => () => controller.abort(from.reason);
  if (a.aborted) controller.abort(a.reason);
  else if (b.aborted) controller.abort(b.reason);
  else {
    a.addEventListener('abort', forward(a), { once: true, signal: controller.signal });
    b.addEventListener('abort', forward(b), { once: true, signal: controller.signal });
  }
  return controller.signal;
}

/** Counts job ids generated by `runJob` (per process). */
/**
 * Makes generated job ids unique per process: the pid in Node; in a page (no `process`), a
 * random tag, since several pages may drive one QEMU.
 */
const JOB_ID_PREFIX: string =
  (globalThis as { process?: { pid?: number } }).process?.pid?.toString() ??
  `page${Math.random().toString(36).slice(2, 10)}`;
let jobCounter = 0;

/**
 * A typed QMP client. `C`/`E` are a QEMU version's `Commands`/`Events` maps (default: the
 * default version of `@qmpkit/qapi`).
 */
// Explicit variance: measuring it would instantiate every method's types over the maps
// (thousands of conditional types for the merged multi-version maps). `V` is invariant:
// a range client (`@qmpkit/transport/versions`) accepts more in `has`, `supports` narrows it.
export class QmpClient<
  in out C = Commands,
  in out E = Events,
  /** The QEMU versions the client is typed for (`never` for custom bindings); see `supports`. */
  in out V extends string = DefaultQemuVersion,
> {
  readonly address: QmpAddress;
  /** Type-level only: the QEMU versions this client is typed for. Never set. */
  declare readonly qemuVersions?: V;
  /** Resolves once, when the client is closed for good (after any reconnect attempts). */
  readonly closed: Promise<CloseReason>;
  private session: QmpSession | undefined;
  private readonly hub: EventHub;
  private schemaPromise: Promise<SchemaIndex> | undefined;
  private resolveClosed: (reason: CloseReason) => void = () => {};
  private closing = false;
  private reconnecting: Promise<QmpSession> | undefined;
  /** Ends the reconnect backoff sleep early (used by `close()`). */
  private wakeReconnect: (() => void) | undefined;
  /** Aborted by `close()`: ends a dial or handshake in progress (e.g. of a reconnect). */
  private readonly closeController = new AbortController();
  private readonly validateEvents: boolean;

  /** @internal Use `connect()`. */
  constructor(
    address: QmpAddress,
    private readonly options: ConnectOptions<C, E>,
    private readonly logger: Logger,
    private readonly mode: ValidateMode,
    private readonly tables: SchemaTables | undefined,
  ) {
    this.address = address;
    this.hub = new EventHub(logger);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.validateEvents = mode !== 'off' && tables !== undefined;
  }

  /** @internal */
  async start(): Promise<void> {
    this.session = await this.open();
  }

  private async open(): Promise<QmpSession> {
    const o = this.options;
    const timeout = o.connectTimeout ?? 10_000;
    // One deadline for dial + greeting + negotiation: a re-dial that lands in the listen
    // backlog of a QEMU whose single monitor another client holds gets no greeting, and
    // must give up (closing its socket) rather than wait for it.
    const deadline = performance.now() + timeout;
    const dialSignal = AbortSignal.timeout(timeout);
    // What ends an attempt early: the caller's signal, and `close()`.
    const stop = o.signal
      ? anySignal(o.signal, this.closeController.signal)
      : this.closeController.signal;
    const signal = anySignal(stop, dialSignal);
    let channel: Awaited<ReturnType<typeof dial>>;
    const dialOnce = () =>
      dial(this.address, {
        signal,
        ...(o.WebSocket ? { WebSocket: o.WebSocket } : {}),
        ...(o.wsFraming ? { wsFraming: o.wsFraming } : {}),
        ...(o.wsProtocols ? { wsProtocols: o.wsProtocols } : {}),
      });
    try {
      channel = await (o.waitForListener === true
        ? retryUntilListening(dialOnce, signal)
        : dialOnce());
    } catch (error) {
      if (dialSignal.aborted && !o.signal?.aborted) {
        throw new QmpConnectionError(
          formatAddress(this.address),
          'ETIMEDOUT',
          `connect timed out after ${timeout} ms`,
          { cause: error },
        );
      }
      throw error;
    }
    const onEvent = o.onEvent;
    let opened: QmpSession | undefined;
    const session = await QmpSession.open(channel, {
      connectTimeout: Math.max(1, Math.ceil(deadline - performance.now())),
      logger: this.logger,
      ...(o.trace ? { trace: o.trace } : {}),
      onEvent: (event) => {
        if (this.validateEvents) this.checkEvent(event);
        if (onEvent) {
          try {
            onEvent(event as unknown as QmpEvent<E>);
          } catch (error) {
            this.logger.warn(`onEvent threw for ${event.event}`, error);
          }
        }
        this.hub.dispatch(event);
      },
      onClose: (reason) => this.sessionClosed(opened, reason),
      ...(o.oob === undefined ? {} : { oob: o.oob }),
      ...(o.maxLineBytes === undefined ? {} : { maxLineBytes: o.maxLineBytes }),
      ...(o.onUnknownId === undefined ? {} : { onUnknownId: o.onUnknownId }),
      ...(o.correlate === undefined ? {} : { correlate: o.correlate }),
      ...(o.maxInFlight === undefined ? {} : { maxInFlight: o.maxInFlight }),
      signal: stop,
    });
    opened = session;
    return session;
  }

  private sessionClosed(session: QmpSession | undefined, reason: CloseReason): void {
    // `session` is undefined while `open` has not returned: handshake failures are thrown.
    if (session === undefined || session !== this.session) return;
    this.schemaPromise = undefined;
    const reconnect = this.options.reconnect;
    if (this.closing || reason.byClient || !reconnect || this.address.kind === 'duplex') {
      this.finalClose(reason);
      return;
    }
    this.reconnecting = this.reconnectLoop(reconnect === true ? {} : reconnect, reason);
    // Its failure reaches `closed` (finalClose) and every call waiting on it; this only keeps it
    // from going unhandled.
    this.reconnecting.catch(() => {});
  }

  private async reconnectLoop(
    options: ReconnectOptions,
    lastReason: CloseReason,
  ): Promise<QmpSession> {
    let delay = options.initialDelay ?? 100;
    const maxDelay = options.maxDelay ?? 5000;
    const factor = options.factor ?? 2;
    const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
    let lastError: unknown = lastReason.error;
    for (let attempt = 1; attempt <= maxAttempts && !this.closing; attempt++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeReconnect = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeReconnect = undefined;
      if (this.closing) break;
      try {
        const session = await this.open();
        if (this.closing) {
          await session.close();
          break;
        }
        this.session = session;
        this.reconnecting = undefined;
        options.onReconnect?.(attempt);
        return session;
      } catch (error) {
        lastError = error;
        this.logger.warn(`reconnect attempt ${attempt} failed`, error);
        delay = Math.min(delay * factor, maxDelay);
      }
    }
    const error =
      lastError instanceof Error
        ? lastError
        : new QmpDisconnectedError(undefined, { cause: lastError });
    this.reconnecting = undefined;
    this.finalClose({ byClient: this.closing, error: this.closing ? undefined : error });
    throw error;
  }

  private finalClose(reason: CloseReason): void {
    this.hub.end(reason.error);
    this.resolveClosed(reason);
  }

  /** `ready`, …, `closed`; `reconnecting` while a reconnect is under way. */
  get state(): SessionState | 'reconnecting' {
    if (this.reconnecting) return 'reconnecting';
    return this.session?.state ?? 'connecting';
  }
  /** The greeting of the current connection. */
  get greeting(): QmpGreeting {
    return this.session!.greeting!;
  }
  /** Capabilities enabled on the current connection (e.g. `['oob']`). */
  get capabilities(): readonly string[] {
    return this.session?.capabilities ?? [];
  }
  /** Commands awaiting a reply. */
  get pendingCount(): number {
    return this.session?.pendingCount ?? 0;
  }

  /**
   * Runs a command. Arguments and result are typed by the bindings:
   * `execute('stop')`, `execute('query-block')`, `execute('blockdev-add', { … })`.
   */
  execute<K extends CommandName<C>>(
    command: K,
    ...rest: ExecuteRest<ArgsOf<C, K>>
  ): Promise<ReturnOf<C, K>> {
    return this.run(command, rest[0], rest[1], false) as Promise<ReturnOf<C, K>>;
  }

  /** Runs an OOB-capable command with `exec-oob` (it may overtake queued commands). */
  executeOob<K extends OobCommandName<C>>(
    command: K,
    ...rest: ExecuteRest<ArgsOf<C, K>>
  ): Promise<ReturnOf<C, K>> {
    return this.run(command, rest[0], rest[1], true) as Promise<ReturnOf<C, K>>;
  }

  /**
   * Runs any command by name, unchecked at compile time (for commands newer than the
   * bindings, `x-` commands, downstream `__` commands). Validation still applies.
   */
  executeUnchecked(
    command: string,
    args?: unknown,
    options?: ExecuteOptions & { oob?: boolean },
  ): Promise<unknown> {
    return this.run(command, args, options, options?.oob === true);
  }

  private run(
    command: string,
    args: unknown,
    options: ExecuteOptions | undefined,
    oob: boolean,
  ): Promise<unknown> {
    const session = this.session;
    const send: SendOptions | undefined =
      oob || options !== undefined ? { ...options, ...(oob ? { oob } : {}) } : undefined;
    if (this.mode !== 'off' && this.tables !== undefined) {
      const problems = validateArgs(this.tables, command, args);
      if (problems.length > 0) {
        if (this.mode === 'strict')
          return Promise.reject(new QmpValidationError(command, 'arguments', problems));
        this.report({ direction: 'arguments', name: command, problems });
      }
      return this.sendVia(session, command, args, send).then((value) =>
        this.checkReturn(command, value),
      );
    }
    return this.sendVia(session, command, args, send);
  }

  private sendVia(
    session: QmpSession | undefined,
    command: string,
    args: unknown,
    send: SendOptions | undefined,
  ): Promise<unknown> {
    if (this.reconnecting) return this.sendAfterReconnect(this.reconnecting, command, args, send);
    if (session === undefined) return Promise.reject(new QmpDisconnectedError(command));
    return session.send(command, args, send);
  }

  /**
   * A call made while reconnecting waits for the new session, but never unboundedly: its own
   * abort, its own `timeout` (which then covers the wait and the reply) and the reconnect's
   * `waitTimeout` all end the wait.
   */
  private async sendAfterReconnect(
    ready: Promise<QmpSession>,
    command: string,
    args: unknown,
    send: SendOptions | undefined,
  ): Promise<unknown> {
    const signal = send?.signal;
    if (signal?.aborted) throw signal.reason;
    const reconnect = this.options.reconnect;
    const waitTimeout =
      (typeof reconnect === 'object' ? reconnect.waitTimeout : undefined) ?? 30_000;
    const ownTimeout = send?.timeout;
    const started = performance.now();
    let onAbort: (() => void) | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let session: QmpSession;
    try {
      session = await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          if (signal) {
            onAbort = () => reject(signal.reason);
            signal.addEventListener('abort', onAbort, { once: true });
          }
          const own = ownTimeout ?? Number.POSITIVE_INFINITY;
          if (own <= waitTimeout)
            timer = setTimeout(() => reject(new QmpTimeoutError(command, own)), own);
          else
            timer = setTimeout(
              () =>
                reject(
                  new QmpDisconnectedError(command, {
                    cause: new QmpTimeoutError(
                      'reconnect',
                      waitTimeout,
                      `${command}: not sent, no new QMP session within ${waitTimeout} ms`,
                    ),
                  }),
                ),
              waitTimeout,
            );
        }),
      ]);
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error;
      if (error instanceof QmpTimeoutError || error instanceof QmpDisconnectedError) throw error;
      throw new QmpDisconnectedError(command, { cause: error });
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    if (ownTimeout === undefined) return session.send(command, args, send);
    // The wait used part of the call's own timeout; the reply gets the rest.
    const left = Math.max(1, Math.ceil(ownTimeout - (performance.now() - started)));
    return session.send(command, args, { ...send, timeout: left });
  }

  private checkReturn(command: string, value: unknown): unknown {
    // Unknown commands were reported (or refused) when sent; nothing to check against.
    if (this.tables!.commands[command] === undefined) return value;
    const problems = validateReturn(this.tables!, command, value, { open: true });
    if (problems.length > 0) {
      if (this.mode === 'strict') throw new QmpValidationError(command, 'return', problems);
      this.report({ direction: 'return', name: command, problems });
    }
    return value;
  }

  private checkEvent(event: WireEvent): void {
    const problems = validateEvent(this.tables!, event.event, event.data, { open: true });
    if (problems.length > 0) this.report({ direction: 'event', name: event.event, problems });
  }

  private report(report: ValidationReport): void {
    if (this.options.onValidation) this.options.onValidation(report);
    else
      this.logger.warn(
        `${report.direction} of ${report.name} do not match the schema: ${report.problems
          .map((p) => `${p.path}: ${p.message}`)
          .join('; ')}`,
      );
  }

  /**
   * Runs an HMP command line through `human-monitor-command` and returns its output. HMP
   * reports its own failures as text in a successful reply (`{"return": "Error: …"}`); with
   * `errors: 'throw'` an output line starting with `Error:` becomes a `QmpHmpError`
   * (default `'return'`: the text is returned as it is).
   */
  async hmp(
    commandLine: string,
    options: ExecuteOptions & { cpuIndex?: number; errors?: 'return' | 'throw' } = {},
  ): Promise<string> {
    const { cpuIndex, errors, ...rest } = options;
    const args =
      cpuIndex === undefined
        ? { 'command-line': commandLine }
        : { 'command-line': commandLine, 'cpu-index': cpuIndex };
    const output = (await this.run('human-monitor-command', args, rest, false)) as string;
    if (errors === 'throw') {
      const error = /(?:^|\n)Error: ?([^\r\n]*)/.exec(output);
      if (error) throw new QmpHmpError({ commandLine, desc: error[1] ?? '', output });
    }
    return output;
  }

  /** Calls `fn` for every `name` event; returns the unsubscribe function. */
  on<K extends EventName<E>>(name: K, fn: (event: QmpEvent<E, K>) => void): () => void {
    return listener(this.hub, [name], fn as unknown as (event: WireEvent) => void);
  }

  /** Calls `fn` for every event; returns the unsubscribe function. */
  onAny(fn: (event: QmpEvent<E>) => void): () => void {
    return listener(this.hub, undefined, fn as unknown as (event: WireEvent) => void);
  }

  /**
   * A bounded async iterator of events:
   * `for await (const e of qmp.events({ names: ['STOP', 'RESUME'] })) …`
   * The reader never waits for the consumer; overflow is reported (see `overflow`).
   */
  events<K extends EventName<E> = EventName<E>>(
    options: Omit<EventStreamOptions<QmpEvent<E, K>>, 'names'> & {
      readonly names?: readonly K[];
    } = {},
  ): EventStream<QmpEvent<E, K>> {
    return new EventStream<QmpEvent<E, K>>(this.hub, options);
  }

  /**
   * Arms a wait for an event *now*; call it before `execute` and await `.wait()` after:
   * ```ts
   * const stopped = qmp.expectEvent('STOP');
   * await qmp.execute('stop');
   * const e = await stopped.wait({ timeout: 5000 });
   * ```
   */
  expectEvent<K extends EventName<E>>(
    name: K | readonly K[],
    predicate?: (event: QmpEvent<E, K>) => boolean,
  ): EventExpectation<QmpEvent<E, K>> {
    return new EventExpectation<QmpEvent<E, K>>(
      this.hub,
      typeof name === 'string' ? [name] : name,
      predicate,
    );
  }

  /**
   * Sends `command` and waits for the event it causes, with the wait armed *before* sending —
   * the order that `await execute(); await waitFor()` gets wrong when QEMU writes the event
   * ahead of the reply (as it does for `stop`):
   * ```ts
   * const { event } = await qmp.executeAndWait(
   *   { event: 'DEVICE_DELETED', where: (e) => e.data.device === 'disk1', timeout: 10_000 },
   *   'device_del',
   *   { id: 'disk1' },
   * );
   * ```
   * If the command fails, its error is thrown and the wait is dropped. `timeout` and
   * `signal` apply to the wait after the reply; the command's own go in its options.
   */
  async executeAndWait<K extends CommandName<C>, EK extends EventName<E>>(
    expected: WaitOptions & {
      readonly event: EK | readonly EK[];
      readonly where?: (event: QmpEvent<E, EK>) => boolean;
    },
    command: K,
    ...rest: ExecuteRest<ArgsOf<C, K>>
  ): Promise<{ readonly result: ReturnOf<C, K>; readonly event: QmpEvent<E, EK> }> {
    const expectation = this.expectEvent(expected.event, expected.where);
    try {
      const result = await this.execute(command, ...rest);
      const event = await expectation.wait({
        ...(expected.timeout === undefined ? {} : { timeout: expected.timeout }),
        ...(expected.signal === undefined ? {} : { signal: expected.signal }),
      });
      return { result, event };
    } finally {
      expectation.cancel();
    }
  }

  /**
   * Waits for the next matching event from now on. Only for events not caused by a command
   * you are about to send; otherwise use `expectEvent` before sending.
   */
  waitFor<K extends EventName<E>>(
    name: K | readonly K[],
    predicate?: (event: QmpEvent<E, K>) => boolean,
    options?: WaitOptions,
  ): Promise<QmpEvent<E, K>> {
    const expectation = this.expectEvent(name, predicate);
    return expectation.wait(options).finally(() => expectation.cancel());
  }

  /**
   * Runs a job command (`snapshot-save`, `blockdev-create`, …) to the end: listens for
   * `JOB_STATUS_CHANGE` before sending, waits for `concluded`, reads the job's error with
   * `query-jobs` *before* `job-dismiss`, always dismisses, and cancels with `job-cancel`
   * when `signal` aborts. Throws `QmpJobError` with QEMU's message when the job failed.
   * A missing `job-id` is generated.
   */
  runJob<K extends JobCommandName<C>>(
    command: K,
    args: DistributiveOmitJobId<ArgsOf<C, K>> & { readonly 'job-id'?: string },
    options: JobOptions = {},
  ): Promise<JobResult<ReturnOf<C, K>>> {
    const given = (args as { 'job-id'?: string })['job-id'];
    const jobId = given ?? `qmpkit-job-${JOB_ID_PREFIX}-${++jobCounter}`;
    return runJob<ReturnOf<C, K>>(
      {
        expect: (predicate) =>
          new EventExpectation<WireEvent>(this.hub, ['JOB_STATUS_CHANGE'], predicate),
        listen: (fn) => listener(this.hub, ['JOB_STATUS_CHANGE'], fn),
        send: (cmd, a, o) => this.run(cmd, a, o, false),
      },
      command,
      { ...(args as object), 'job-id': jobId },
      jobId,
      options,
    );
  }

  /** The connection's `query-qmp-schema`, loaded once per connection. */
  schema(options: ExecuteOptions = {}): Promise<SchemaIndex> {
    if (!this.schemaPromise) {
      const loading = this.run('query-qmp-schema', undefined, options, false).then((value) =>
        SchemaIndex.from(value),
      );
      this.schemaPromise = loading;
      loading.catch(() => {
        if (this.schemaPromise === loading) this.schemaPromise = undefined;
      });
    }
    return this.schemaPromise;
  }

  /**
   * Does *this* QEMU have a command/event (and a member, enum value, branch, feature)?
   * Names are checked against the bindings at compile time:
   * `has('snapshot-save')`, `has('blockdev-add', { when: { driver: 'qcow2' }, member: 'data-file' })`.
   * A client typed for a range of versions (`@qmpkit/transport/versions`) accepts what *any* of
   * them has (a typo still fails to compile). The answer is a boolean and does not narrow the
   * client's type; use `supports(qmp, …)` for that. A name (or member, value) that neither the connected
   * QEMU nor any version the bindings know has throws `QmpUnknownCapabilityError`.
   */
  async has<K extends HasName<C, E>>(
    name: K,
    query?: SchemaQuery<HasSubject<C, E, K>>,
  ): Promise<boolean> {
    const schema = await this.schema();
    // The typed query is a (recursive) refinement of the untyped shape.
    return askSchema(schema, String(name), query as unknown as UntypedSchemaQuery | undefined);
  }

  /** Closes the connection (pending commands reject with `QmpDisconnectedError`). */
  async close(): Promise<CloseReason> {
    this.closing = true;
    this.wakeReconnect?.();
    this.closeController.abort(new QmpDisconnectedError(undefined));
    const session = this.session;
    if (this.reconnecting) {
      await this.reconnecting.then(
        (s) => s.close(),
        () => undefined,
      );
    } else if (session) {
      await session.close();
    }
    if (session?.state === 'closed' || !session)
      this.finalClose({ byClient: true, error: undefined });
    return this.closed;
  }
}

/** `Omit<A, 'job-id'>` for each branch of a union. */
export type DistributiveOmitJobId<A> = A extends unknown ? Omit<A, 'job-id'> : never;
