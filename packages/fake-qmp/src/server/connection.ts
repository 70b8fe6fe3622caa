/**
 * One QMP client of the fake: greeting, capabilities negotiation, QEMU's request checks
 * (`qmp_dispatch` order and wording), in-band queue and out-of-band bypass, replies in
 * QEMU's byte format, and the hooks for faults, strict expectations and replay.
 */

import { isQmpReplyError } from '../errors.js';
import { isDict, type QemuDict, type QemuValue, toPlain } from '../json/values.js';
import { qemuLine } from '../json/writer.js';
import { nextTurn } from '../platform/runtime.js';
import { RequestReader } from '../protocol/input.js';
import { qdictKeys } from '../protocol/visitor.js';
import type { ReplayPlayer } from '../replay/player.js';
import { DEFAULT_GARBAGE, type FaultSpec } from '../script/faults.js';
import {
  type CommandContext,
  type CommandHandler,
  type ExchangeRecord,
  type FakeClient,
  NO_REPLY,
} from './types.js';

/** The byte pipe under a connection. */
export interface ConnectionIO {
  write(text: string): void;
  /** Closes the connection (pending output is flushed first when possible). */
  close(): void;
  /**
   * Output waits in memory beyond the transport's high-water mark (a client that does not
   * read): the connection stops reading this client's input until `whenWritable` fires.
   */
  backlogged?(): boolean;
  /** Calls `fn` once when the output backlog has drained (or the transport closed). */
  whenWritable?(fn: () => void): void;
  /** Stop / restart reading from the transport (flow control towards the client). */
  pause?(): void;
  resume?(): void;
}

/**
 * Input bytes one client gets handled per turn (a turn also ends after INPUT_SLICE_MESSAGES
 * messages). A client that sends a lot (garbage, a flood of commands) is worked through in
 * slices, with the other clients' input and the event loop served in between
 * (`setImmediate`), so one client cannot stall the others.
 */
export const INPUT_SLICE_BYTES = 16 * 1024;
/** Messages (requests and parse errors) one client gets handled per turn. */
export const INPUT_SLICE_MESSAGES = 64;
/** Input is fed to the parser in pieces of this size, so a turn can end between messages. */
export const INPUT_PIECE_BYTES = 1024;

/** What a connection needs from the server. */
export interface ConnectionHost {
  readonly maxLineBytes: number;
  readonly capabilities: readonly string[];
  greetingLine(): string;
  /** Commands known to this QEMU (name → args type / oob flag). */
  command(name: string): { args: string | undefined; allowOob: boolean } | undefined;
  checkArgs(command: string, args: QemuDict): string | undefined;
  /** The handler that answers a valid command (override, expectation, model or default). */
  resolve(command: string, args: Record<string, unknown>): CommandHandler;
  emit(event: string, data?: unknown): void;
  eventLine(event: string, data: unknown): string;
  replyLine(command: string | undefined, value: unknown, id: QemuValue | undefined): string;
  faultsForGreeting(client: number): FaultSpec[];
  faultsForReply(client: number, command: string | undefined): FaultSpec[];
  dropAfter(client: number): number | undefined;
  record(entry: ExchangeRecord): void;
  replayPlayer(connection: Connection): ReplayPlayer | undefined;
  closed(connection: Connection): void;
}

const isPromise = (v: unknown): v is PromiseLike<unknown> =>
  typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

function errorLine(errorClass: string, desc: string, id: QemuValue | undefined): string {
  const error = { class: errorClass, desc };
  return qemuLine(id === undefined ? { error } : { error, id });
}

export class Connection implements FakeClient {
  negotiated = false;
  oob = false;
  commandCount = 0;
  private open = true;
  private readonly reader: RequestReader;
  private readonly queue: (() => unknown)[] = [];
  private busy = false;
  private greeted = false;
  private readonly early: (() => void)[] = [];
  private player: ReplayPlayer | undefined;

  constructor(
    readonly id: number,
    readonly transport: FakeClient['transport'],
    private readonly host: ConnectionHost,
    private readonly io: ConnectionIO,
  ) {
    this.reader = new RequestReader(
      {
        request: (value) => {
          this.turnMessages++;
          this.request(value);
        },
        parseError: (desc) => {
          this.turnMessages++;
          this.enqueue(() =>
            this.writeReply(undefined, errorLine('GenericError', desc, undefined)),
          );
        },
        overflow: () => {
          // QEMU's own limit message; unlike QEMU the fake then drops the client (bounded memory).
          this.write(errorLine('GenericError', 'JSON token size limit exceeded', undefined));
          this.close();
        },
      },
      host.maxLineBytes,
    );
  }

  get isOpen(): boolean {
    return this.open;
  }

  start(): void {
    this.player = this.host.replayPlayer(this);
    let delay = 0;
    for (const fault of this.host.faultsForGreeting(this.id)) {
      if (fault.kind === 'event-before-greeting')
        this.write(this.host.eventLine(fault.event, fault.data));
      else if (fault.kind === 'stall-greeting') return;
      else if (fault.kind === 'delay-greeting') delay += fault.ms;
    }
    const greet = () => {
      if (!this.open) return;
      if (this.player) this.player.start();
      else this.write(this.host.greetingLine());
      this.greeted = true;
      for (const fn of this.early.splice(0)) fn();
    };
    if (delay > 0) setTimeout(greet, delay);
    else greet();
  }

  /** Bytes from the client. */
  data(chunk: Uint8Array): void {
    if (!this.open) return;
    if (!this.greeted) {
      const copy = new Uint8Array(chunk); // a copy: the caller may reuse its chunk
      this.early.push(() => this.data(copy));
      return;
    }
    const buf = chunk;
    this.inbox.push(buf);
    this.inboxBytes += buf.length;
    if (!this.turnPending) this.pump();
  }

  /** Input received and not handled yet (waiting for this client's next turn). */
  get pendingInputBytes(): number {
    return this.inboxBytes;
  }

  private readonly inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  /** A later turn is scheduled (setImmediate, or waiting for the output to drain). */
  private turnPending = false;

  /** One turn: at most INPUT_SLICE_BYTES of this client's input. */
  private turnMessages = 0;

  private pump(): void {
    let budget = INPUT_SLICE_BYTES;
    this.turnMessages = 0;
    while (
      this.open &&
      this.inbox.length > 0 &&
      budget > 0 &&
      this.turnMessages < INPUT_SLICE_MESSAGES
    ) {
      if (this.io.backlogged?.()) {
        // The client does not read its replies: stop reading its input until it does.
        this.turnPending = true;
        this.io.pause?.();
        const io = this.io;
        io.whenWritable?.(() => {
          this.turnPending = false;
          if (this.open) this.pump();
        });
        if (!io.whenWritable) this.turnPending = false;
        return;
      }
      budget -= this.take(Math.min(budget, INPUT_PIECE_BYTES));
    }
    if (!this.open) return;
    if (this.inbox.length > 0) {
      this.turnPending = true;
      this.io.pause?.();
      nextTurn(() => {
        this.turnPending = false;
        if (this.open) this.pump();
      });
      return;
    }
    this.io.resume?.();
  }

  /** Feeds up to `max` bytes of the inbox to the reader; returns how many it fed. */
  private take(max: number): number {
    const chunk = this.inbox[0]!;
    if (chunk.length <= max) {
      this.inbox.shift();
      this.inboxBytes -= chunk.length;
      this.reader.push(chunk);
      return chunk.length;
    }
    this.inbox[0] = chunk.subarray(max);
    this.inboxBytes -= max;
    this.reader.push(chunk.subarray(0, max));
    return max;
  }

  /** Handles everything still in the inbox now (the client is leaving). */
  private drainInbox(): void {
    while (this.inbox.length > 0) {
      const chunk = this.inbox.shift()!;
      this.inboxBytes -= chunk.length;
      this.reader.push(chunk);
    }
  }

  /** The client went away. */
  ended(): void {
    if (!this.open) return;
    // Like QEMU, input already received is still executed (its replies have nowhere to go).
    this.drainInbox();
    this.open = false;
    this.inbox.length = 0;
    this.inboxBytes = 0;
    this.reader.stop();
    this.host.closed(this);
  }

  write(text: string): void {
    if (this.open) this.io.write(text);
  }

  sendRaw(text: string): void {
    this.write(text);
  }

  sendEvent(event: string, data?: unknown): void {
    this.write(this.host.eventLine(event, data));
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.inbox.length = 0;
    this.inboxBytes = 0;
    this.reader.stop();
    this.io.close();
    this.host.closed(this);
  }

  // ---- requests ---------------------------------------------------------------------

  private request(value: QemuValue): void {
    if (this.player) {
      this.commandCount++;
      this.player.input(JSON.stringify(toPlain(value)));
      return;
    }
    // QEMU runs out-of-band requests at once, everything else in order.
    if (isDict(value) && value['exec-oob'] !== undefined && value.execute === undefined) {
      const result = this.dispatch(value);
      if (isPromise(result)) result.then(undefined, () => {});
      return;
    }
    this.enqueue(() => this.dispatch(value));
  }

  /** Replay mode sees raw lines the JSON layer could not read too. */
  private enqueue(task: () => unknown): void {
    if (this.busy) {
      this.queue.push(task);
      return;
    }
    this.runTask(task);
  }

  private runTask(task: () => unknown): void {
    let result: unknown;
    try {
      result = task();
    } catch (error) {
      // Handler errors become QMP errors in dispatch(); anything else is a bug in the fake:
      // keep serving this client, but fail loudly.
      queueMicrotask(() => {
        throw error;
      });
      result = undefined;
    }
    if (isPromise(result)) {
      this.busy = true;
      const next = () => {
        this.busy = false;
        const following = this.queue.shift();
        if (following && this.open) this.runTask(following);
        else if (following) this.queue.length = 0;
      };
      result.then(next, next);
      return;
    }
    const following = this.queue.shift();
    if (following) this.runTask(following);
  }

  /** QEMU's `qmp_dispatch` (+ the negotiation-mode error rewrite of `monitor_qmp_dispatch`). */
  private dispatch(value: QemuValue): unknown {
    this.commandCount++;
    if (!isDict(value)) {
      this.record(undefined, undefined, undefined, false);
      return this.writeReply(
        undefined,
        errorLine('GenericError', 'QMP input must be a JSON object', undefined),
      );
    }
    const id = value.id;
    let execKey: 'execute' | 'exec-oob' | undefined;
    let problem: string | undefined;
    for (const key of qdictKeys(value)) {
      const member = value[key];
      if (key === 'execute' || (key === 'exec-oob' && this.oob)) {
        if (typeof member !== 'string') {
          problem = `QMP input member '${key}' must be a string`;
          break;
        }
        if (execKey !== undefined) {
          problem = `QMP input member '${key}' clashes with '${execKey}'`;
          break;
        }
        execKey = key;
      } else if (key === 'arguments') {
        if (!isDict(member)) {
          problem = "QMP input member 'arguments' must be an object";
          break;
        }
      } else if (key !== 'id') {
        problem = `QMP input member '${key}' is unexpected`;
        break;
      }
    }
    if (problem === undefined && execKey === undefined)
      problem = "QMP input lacks member 'execute'";
    const name = execKey === undefined ? undefined : (value[execKey] as string);
    const oob = execKey === 'exec-oob';
    const args = (isDict(value.arguments) ? value.arguments : {}) as QemuDict;
    if (problem !== undefined) {
      this.record(name, args, id, oob);
      return this.replyError(name, 'GenericError', problem, id);
    }
    const command = name!;
    const plainArgs = toPlain(args) as Record<string, unknown>;
    this.record(command, plainArgs, id, oob);
    const spec =
      this.negotiated || command === 'qmp_capabilities' ? this.host.command(command) : undefined;
    if (!spec)
      return this.replyError(
        command,
        'CommandNotFound',
        `The command ${command} has not been found`,
        id,
      );
    if (oob && !spec.allowOob)
      return this.replyError(
        command,
        'GenericError',
        `The command ${command} does not support OOB`,
        id,
      );
    const invalid = this.host.checkArgs(command, args);
    if (invalid !== undefined) return this.replyError(command, 'GenericError', invalid, id);
    if (command === 'qmp_capabilities') return this.capabilities(plainArgs, id);
    const handler = this.host.resolve(command, plainArgs);
    const context: CommandContext = {
      command,
      id,
      oob,
      client: this,
      emit: (event, data) => this.host.emit(event, data),
      fallback: () => undefined,
    };
    let result: unknown;
    try {
      result = handler(plainArgs, context);
    } catch (error) {
      return this.replyThrown(command, error, id);
    }
    if (isPromise(result)) {
      return Promise.resolve(result).then(
        (v) => this.replySuccess(command, v, id),
        (error: unknown) => this.replyThrown(command, error, id),
      );
    }
    return this.replySuccess(command, result, id);
  }

  private capabilities(args: Record<string, unknown>, id: QemuValue | undefined): unknown {
    if (this.negotiated)
      return this.replyError(
        'qmp_capabilities',
        'CommandNotFound',
        'Capabilities negotiation is already complete, command ignored',
        id,
      );
    const wanted = Array.isArray(args.enable) ? (args.enable as string[]) : [];
    const unavailable = wanted.filter((c) => !this.host.capabilities.includes(c));
    if (unavailable.length > 0)
      return this.replyError(
        'qmp_capabilities',
        'GenericError',
        `Capability ${unavailable.join(', ')} not available`,
        id,
      );
    this.oob = wanted.includes('oob');
    this.negotiated = true;
    return this.replySuccess('qmp_capabilities', undefined, id);
  }

  private replyThrown(command: string, error: unknown, id: QemuValue | undefined): unknown {
    if (isQmpReplyError(error)) return this.replyError(command, error.errorClass, error.desc, id);
    const desc = error instanceof Error ? error.message : String(error);
    return this.replyError(
      command,
      'GenericError',
      `qmpkit fake-qmp: handler for '${command}' threw: ${desc}`,
      id,
    );
  }

  private replyError(
    command: string | undefined,
    errorClass: string,
    desc: string,
    id: QemuValue | undefined,
  ): unknown {
    let text = desc;
    // Before negotiation QEMU replaces the text of every CommandNotFound error.
    if (!this.negotiated && errorClass === 'CommandNotFound')
      text = "Expecting capabilities negotiation with 'qmp_capabilities'";
    this.lastReply = { error: { class: errorClass, desc: text } };
    return this.writeReply(command, errorLine(errorClass, text, id));
  }

  private replySuccess(command: string, value: unknown, id: QemuValue | undefined): unknown {
    if (value === NO_REPLY) return undefined;
    const ret = value === undefined ? {} : value;
    this.lastReply = { return: ret };
    return this.writeReply(command, this.host.replyLine(command, ret, id));
  }

  private lastEntry: ExchangeRecord | undefined;
  private set lastReply(reply: NonNullable<ExchangeRecord['reply']>) {
    if (this.lastEntry) this.lastEntry.reply = reply;
  }

  private record(
    command: string | undefined,
    args: unknown,
    id: QemuValue | undefined,
    oob: boolean,
  ): void {
    const entry: ExchangeRecord = {
      client: this.id,
      command,
      arguments: args,
      id: toPlain(id),
      oob,
    };
    this.lastEntry = entry;
    this.host.record(entry);
  }

  /** Writes a reply line through the fault rules; a promise holds the in-band queue. */
  private writeReply(command: string | undefined, line: string): unknown {
    const faults = this.host.faultsForReply(this.id, command);
    const finish = () => {
      const limit = this.host.dropAfter(this.id);
      if (limit !== undefined && this.commandCount >= limit) this.close();
    };
    if (faults.length === 0) {
      this.write(line);
      finish();
      return undefined;
    }
    const send = (): void => {
      for (const f of faults) if (f.kind === 'garbage') this.write(f.text ?? DEFAULT_GARBAGE);
      const cut = faults.find((f) => f.kind === 'partial' || f.kind === 'drop-mid-reply');
      if (faults.some((f) => f.kind === 'drop')) {
        this.close();
        return;
      }
      if (cut) {
        const bytes =
          cut.kind === 'partial' || cut.kind === 'drop-mid-reply' ? cut.bytes : undefined;
        this.write(line.slice(0, bytes ?? Math.max(1, Math.floor(line.length / 2))));
        if (cut.kind === 'drop-mid-reply') this.close();
        return;
      }
      this.write(line);
      finish();
    };
    if (faults.some((f) => f.kind === 'stall')) return new Promise<void>(() => {});
    const delay = faults.reduce((ms, f) => (f.kind === 'delay' ? ms + f.ms : ms), 0);
    if (delay > 0) return new Promise<void>((resolve) => setTimeout(() => resolve(send()), delay));
    send();
    return undefined;
  }
}
