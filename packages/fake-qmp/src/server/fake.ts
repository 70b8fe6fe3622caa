/**
 * `createFakeQmp`: a QMP server that answers like QEMU 7.2 or 10.0, on a UNIX socket, TCP,
 * WebSocket, or in-memory duplex pairs.
 */
import type { AddressInfo } from 'node:net';
import { type Commands, DEFAULT_QEMU_VERSION, type Events } from '@qmpkit/qapi';
import { tables as tables72 } from '@qmpkit/qapi/qemu-7.2';
// The data of the entries below (not the default: the default may move to another version).
import { tables as tables100 } from '@qmpkit/qapi/qemu-10.0';
import { tables as qsdTables72 } from '@qmpkit/qapi/qsd-7.2';
import { tables as qsdTables100 } from '@qmpkit/qapi/qsd-10.0';
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import type { QmpAddress } from '@qmpkit/transport';
import type { QmpVersionInfo } from '@qmpkit/transport/codec';
import { nodePlatform } from '#node';
import * as data72 from '../data/qemu-7.2.generated.js';
import * as data100 from '../data/qemu-10.0.generated.js';
import * as qsdData72 from '../data/qsd-7.2.generated.js';
import * as qsdData100 from '../data/qsd-10.0.generated.js';
import {
  FakeQmpUsageError,
  qmpError,
  type ReplayDivergence,
  ReplayDivergenceError,
} from '../errors.js';
import type { QemuDict } from '../json/values.js';
import { qemuLine } from '../json/writer.js';
import type { ExportAddArgs } from '../model/exports.js';
import type { FakeTiming, HandlerTable, ModelHost, VersionFacts } from '../model/host.js';
import { MemoryStorage, type Storage } from '../model/storage.js';
import { VmModel, type VmOptions } from '../model/vm.js';
import { monotonicNs, needNode } from '../platform/runtime.js';
import { canonicalize } from '../protocol/canonical.js';
import { checkArguments, type IntegerMembers } from '../protocol/visitor.js';
import type { Conversation } from '../replay/conversation.js';
import { ReplayPlayer } from '../replay/player.js';
import {
  type ArgumentsMatcher,
  type Expectation,
  ExpectationQueue,
} from '../script/expectations.js';
import { type FaultHandle, type FaultSpec, Faults } from '../script/faults.js';
import { Connection, type ConnectionHost, type ConnectionIO } from './connection.js';
import type { CommandContext, CommandHandler, ExchangeRecord, FakeClient } from './types.js';

/** Where the fake listens. Omitted paths/ports are chosen for you (a fresh 0700 directory, a free port). */
export type ListenOption =
  | { readonly unix: string | true }
  | { readonly tcp: string | { readonly host?: string; readonly port?: number } }
  | {
      readonly ws:
        | string
        | { readonly host?: string; readonly port?: number; readonly path?: string };
      /** `message` (default): one QMP message per WebSocket message; `stream`: arbitrary slices. */
      readonly framing?: 'message' | 'stream';
    };

export interface FakeAddress {
  readonly kind: 'unix' | 'tcp' | 'ws';
  /** As `connect()` of `@qmpkit/transport` takes it: `unix:/…`, `tcp:127.0.0.1:4444`, `ws://…`. */
  readonly address: string;
}

export interface FakeQmpOptions extends VmOptions {
  /** The QEMU the fake imitates (one of {@link FAKE_QEMU_VERSIONS}; default: qapi's default). */
  readonly qemuVersion?: FakeQemuVersion;
  /**
   * Which QEMU program: `qemu-system` (default, `qemu-system-x86_64`) or `storage-daemon`
   * (`qemu-storage-daemon`: its own schema and command set, no machine; see
   * `createFakeStorageDaemon`).
   */
  readonly personality?: FakePersonality;
  /** `--nbd-server` of the storage daemon (or `nbd-server-start` before any client): its `addr`. */
  readonly nbdServer?: { readonly addr: Record<string, unknown> } & Record<string, unknown>;
  /** Exports present at start (`--export` of the storage daemon), after `blockdev` and `nbdServer`. */
  readonly exports?: readonly ExportAddArgs[];
  readonly listen?: ListenOption | readonly ListenOption[];
  /** Capabilities offered in the greeting (default `['oob']`, like QEMU on a socket). */
  readonly capabilities?: readonly string[];
  /** Image files: 'host' (default) uses the real filesystem, 'memory' a private map. */
  readonly storage?: 'host' | 'memory' | Storage;
  readonly timing?: FakeTiming;
  /** Longest accepted message in bytes (default 64 MiB, QEMU's limit); longer ones drop the client. */
  readonly maxLineBytes?: number;
  /** Exchanges kept in `history` (default 1000; 0 keeps none). */
  readonly history?: number;
  /** Strict mode from the start: every command must be expected (`fake.expect`). */
  readonly strict?: boolean;
  /** Serve a recorded conversation instead of the simulated VM. */
  readonly replay?: Conversation;
  /** Replay timing: as fast as possible (default) or with the recorded delays. */
  readonly replayTiming?: 'asap' | 'recorded';
}

type CommandName = keyof Commands & string;
type ArgsOf<K extends CommandName> = Commands[K]['args'] extends undefined
  ? Record<string, never>
  : Commands[K]['args'];
type EventName = keyof Events & string;

/** A QEMU version the fake models. */
export type FakeQemuVersion = '7.2' | '10.0';

/** The QEMU program the fake is: the system emulator or the storage daemon. */
export type FakePersonality = 'qemu-system' | 'storage-daemon';

interface VersionData {
  readonly facts: VersionFacts;
  readonly tables: SchemaTables;
  readonly integers: IntegerMembers;
  readonly version: QmpVersionInfo;
  readonly schemaWire: string;
  readonly commandNames: readonly string[];
  readonly target: string;
}

const VERSIONS: Record<FakeQemuVersion, VersionData> = {
  '7.2': {
    facts: {
      vmStateSize: 765,
      snapshotTable: 'spaced',
      migrationDeviceState: false,
      deviceAddDriverMustBeString: false,
      migrationTransferredCountsStream: false,
      incomingSetupStatusShown: false,
      migrationTargetGoneDesc: 'Unable to write to socket: Bad file descriptor',
      exitClosesExportsNewestFirst: false,
    },
    tables: tables72,
    integers: data72.integerMembers,
    version: data72.version,
    schemaWire: data72.schemaWire,
    commandNames: data72.commandNames,
    target: data72.target,
  },
  '10.0': {
    facts: {
      vmStateSize: 1107,
      snapshotTable: 'underscored',
      migrationDeviceState: true,
      deviceAddDriverMustBeString: true,
      migrationTransferredCountsStream: true,
      incomingSetupStatusShown: true,
      migrationCancelErrorDesc: 'Channel error: Input/output error',
      migrationTargetGoneDesc: 'Channel error: Input/output error',
      exitClosesExportsNewestFirst: true,
    },
    tables: tables100,
    integers: data100.integerMembers,
    version: data100.version,
    schemaWire: data100.schemaWire,
    commandNames: data100.commandNames,
    target: data100.target,
  },
};

/**
 * The storage daemon of each version: the same build (version, block layer, so the same facts)
 * with the daemon's own captured schema and command list.
 */
const DAEMON_VERSIONS: Record<FakeQemuVersion, VersionData> = {
  '7.2': {
    ...VERSIONS['7.2'],
    tables: qsdTables72,
    integers: qsdData72.integerMembers,
    version: qsdData72.version,
    schemaWire: qsdData72.schemaWire,
    commandNames: qsdData72.commandNames,
    target: qsdData72.target,
  },
  '10.0': {
    ...VERSIONS['10.0'],
    tables: qsdTables100,
    integers: qsdData100.integerMembers,
    version: qsdData100.version,
    schemaWire: qsdData100.schemaWire,
    commandNames: qsdData100.commandNames,
    target: qsdData100.target,
  },
};

/** The QEMU versions the fake can imitate. */
export const FAKE_QEMU_VERSIONS = Object.keys(VERSIONS) as readonly FakeQemuVersion[];

function now(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1_000_000), microseconds: us % 1_000_000 };
}

/** Lines of a WebSocket or stream client. */
/** Output a WebSocket client may leave unread before the fake stops reading its input. */
const WS_BACKLOG_BYTES = 1024 * 1024;

class WsIO implements ConnectionIO {
  constructor(
    private readonly socket: {
      send(d: string, cb?: (error?: Error) => void): void;
      close(): void;
      readyState: number;
      bufferedAmount: number;
      pause?(): void;
      resume?(): void;
    },
  ) {}
  private waiting: (() => void)[] = [];
  write(text: string): void {
    if (this.socket.readyState !== 1) return;
    this.socket.send(text, () => {
      if (this.waiting.length > 0 && !this.backlogged())
        for (const fn of this.waiting.splice(0)) fn();
    });
  }
  backlogged(): boolean {
    return this.socket.readyState === 1 && this.socket.bufferedAmount > WS_BACKLOG_BYTES;
  }
  whenWritable(fn: () => void): void {
    this.waiting.push(fn);
  }
  pause(): void {
    this.socket.pause?.();
  }
  resume(): void {
    this.socket.resume?.();
  }
  close(): void {
    for (const fn of this.waiting.splice(0)) fn();
    this.socket.close();
  }
}

/**
 * A connected byte stream the fake serves on: what it uses of a Node `net.Socket` or a duplex
 * pair end (both fit). Typed here rather than imported from `node:net`/`node:stream` so the
 * fake's declarations name no Node type: a web project without `@types/node` type-checks
 * against `@qmpkit/fake-qmp` and its msw adapter.
 */
export interface FakeStream {
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  readonly writableNeedDrain: boolean;
  write(text: string): unknown;
  end(callback?: () => void): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  setNoDelay?(noDelay?: boolean): unknown;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'drain' | 'end' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

class StreamIO implements ConnectionIO {
  constructor(private readonly stream: FakeStream) {}
  write(text: string): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.write(text);
  }
  backlogged(): boolean {
    return !this.stream.destroyed && this.stream.writableNeedDrain;
  }
  whenWritable(fn: () => void): void {
    let done = false;
    const once = () => {
      if (done) return;
      done = true;
      this.stream.off('drain', once);
      this.stream.off('close', once);
      fn();
    };
    this.stream.on('drain', once);
    this.stream.on('close', once);
  }
  pause(): void {
    if (!this.stream.destroyed) this.stream.pause();
  }
  resume(): void {
    if (!this.stream.destroyed && this.stream.isPaused()) this.stream.resume();
  }
  close(): void {
    // A client that never reads would keep its unsent output (and this stream) forever:
    // give it a moment to take it, then drop the connection.
    if (this.stream.destroyed) return;
    const timer = setTimeout(() => this.stream.destroy(), 1000);
    timer.unref();
    this.stream.end(() => {
      clearTimeout(timer);
      this.stream.destroy();
    });
  }
}

export class FakeQmp {
  /** The simulated VM (run state, block graph, devices, jobs, migration), for setup and assertions. */
  readonly model: VmModel;
  /** Resolves with the exit code when the simulated QEMU exits (`quit`, guest shutdown, failed incoming migration). */
  readonly exited: Promise<number>;
  private resolveExit!: (code: number) => void;
  private readonly data: VersionData;
  private readonly overrides = new Map<string, CommandHandler>();
  private readonly modelHandlers: HandlerTable;
  private readonly expectations = new ExpectationQueue();
  private readonly faults = new Faults();
  private readonly connections = new Set<Connection>();
  private readonly servers: { close(cb: () => void): void }[] = [];
  private readonly cleanup: (() => void)[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly historyLimit: number;
  private readonly historyList: ExchangeRecord[] = [];
  private readonly divergences: ReplayDivergence[] = [];
  private readonly players = new Set<ReplayPlayer>();
  private readonly waiters: { command: string; resolve(e: ExchangeRecord): void }[] = [];
  private nextClient = 1;
  private started = monotonicNs();
  private dead = false;
  readonly addresses: FakeAddress[] = [];
  readonly capabilities: readonly string[];
  readonly maxLineBytes: number;

  /** Use `createFakeQmp`. */
  constructor(private readonly options: FakeQmpOptions = {}) {
    const version = options.qemuVersion ?? DEFAULT_QEMU_VERSION;
    const personality = options.personality ?? 'qemu-system';
    if (personality !== 'qemu-system' && personality !== 'storage-daemon')
      throw new FakeQmpUsageError(
        `qmpkit fake-qmp is 'qemu-system' or 'storage-daemon', not '${String(personality)}'`,
      );
    this.personality = personality;
    const data = (personality === 'storage-daemon' ? DAEMON_VERSIONS : VERSIONS)[version];
    if (!data)
      throw new FakeQmpUsageError(
        `qmpkit fake-qmp imitates QEMU ${FAKE_QEMU_VERSIONS.join(' and ')}, not '${String(version)}'`,
      );
    this.data = data;
    this.capabilities = options.capabilities ?? ['oob'];
    this.maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024;
    this.historyLimit = options.history ?? 1000;
    this.expectations.active = options.strict === true;
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    // Default: host files in Node, memory in a page (no filesystem there).
    const storage =
      options.storage === 'memory'
        ? new MemoryStorage()
        : options.storage === 'host'
          ? needNode(nodePlatform, "storage: 'host'").hostStorage()
          : options.storage === undefined
            ? (nodePlatform?.hostStorage() ?? new MemoryStorage())
            : options.storage;
    const timing = {
      jobMs: options.timing?.jobMs ?? 1,
      migrationMs: options.timing?.migrationMs ?? 2,
      pciUnplugMs: options.timing?.pciUnplugMs ?? 10,
      powerdownShutdownMs: options.timing?.powerdownShutdownMs ?? 'ignore',
      firmwareResetMs: options.timing?.firmwareResetMs ?? 1,
    };
    const host: ModelHost = {
      facts: data.facts,
      tables: data.tables,
      version: data.version,
      storage,
      timing,
      emit: (event, payload) => this.emit(event as EventName, payload),
      later: (ms, fn) => {
        const t = setTimeout(() => {
          this.timers.delete(t);
          fn();
        }, ms);
        this.timers.add(t);
      },
      sleep: (ms) => new Promise<void>((resolve) => host.later(ms, resolve)),
      exit: (code) => this.exit(code),
      uptimeNs: () => monotonicNs() - this.started,
    };
    // The daemon has no machine: nothing to plug devices into, nothing that runs.
    this.model = new VmModel(
      host,
      personality === 'storage-daemon' ? { ...options, machine: 'none' } : options,
      data,
    );
    if (options.nbdServer !== undefined) this.model.exports.start(options.nbdServer.addr);
    for (const args of options.exports ?? []) this.model.exports.addExport(args);
    this.modelHandlers = this.model.handlers();
  }

  /** The QEMU program the fake imitates (see `FakeQmpOptions.personality`). */
  readonly personality: FakePersonality;

  /**
   * Opens what one command-line option opens, as the program does at start: the arguments are
   * checked against the schema type of the option (QEMU's wording, e.g. `Parameter 'file' is
   * missing`), then the model acts (`blockdev`: a node, `object`: an object, `nbd-server`: the
   * NBD server on `addr`, `export`: a block export). Throws `QmpReplyError` with QEMU's text.
   */
  openAtStart(
    option: 'blockdev' | 'object' | 'nbd-server' | 'export',
    args: Record<string, unknown>,
  ): void {
    const type = {
      blockdev: 'BlockdevOptions',
      object: 'ObjectOptions',
      export: 'BlockExportOptions',
      'nbd-server': undefined,
    }[option];
    if (type !== undefined) {
      const problem = checkArguments(this.data.tables, type, args as QemuDict, this.data.integers);
      if (problem !== undefined) throw qmpError(problem);
    }
    if (option === 'blockdev') this.model.block.add(args as { driver: string });
    else if (option === 'object') this.model.objects.add(args);
    else if (option === 'export') this.model.exports.addExport(exportArgs(args));
    else {
      const { addr } = args;
      if (addr === null || typeof addr !== 'object') throw qmpError("Parameter 'addr' is missing");
      this.model.exports.start(addr);
    }
  }

  /** The first listening address (`unix:…`, `tcp:…` or `ws://…`). */
  get address(): string {
    const first = this.addresses[0];
    if (!first)
      throw new FakeQmpUsageError('the fake listens nowhere; pass `listen` or use connectPair()');
    return first.address;
  }

  /** Connected clients. */
  get clients(): readonly FakeClient[] {
    return [...this.connections];
  }

  /** The last exchanges (see the `history` option), oldest first. */
  get history(): readonly ExchangeRecord[] {
    return this.historyList;
  }

  /** Received commands with this name (all when omitted), from `history`. */
  received(command?: string): ExchangeRecord[] {
    return command === undefined
      ? [...this.historyList]
      : this.historyList.filter((e) => e.command === command);
  }

  /** Resolves when the next command with this name arrives. */
  nextCommand(command: string): Promise<ExchangeRecord> {
    return new Promise((resolve) => this.waiters.push({ command, resolve }));
  }

  /** Starts the listeners (called by `createFakeQmp`). */
  async listen(): Promise<void> {
    const list =
      this.options.listen === undefined
        ? []
        : Array.isArray(this.options.listen)
          ? this.options.listen
          : [this.options.listen];
    for (const spec of list as ListenOption[]) await this.listenOne(spec);
    this.model.start();
  }

  private async listenOne(spec: ListenOption): Promise<void> {
    const { fs, net, os, path } = needNode(nodePlatform, 'listening on a socket');
    const { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } = fs;
    const tmpdir = os.tmpdir;
    if ('unix' in spec) {
      let file: string;
      if (spec.unix === true) {
        const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-'));
        chmodSync(dir, 0o700);
        this.cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
        file = path.join(dir, 'qmp.sock');
      } else {
        file = path.resolve(spec.unix);
        const dir = path.dirname(file);
        if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
        if (existsSync(file) && lstatSync(file).isSocket()) unlinkSync(file);
        this.cleanup.push(() => rmSync(file, { force: true }));
      }
      const server = net.createServer((socket) => this.acceptSocket(socket, 'unix'));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(file, () => resolve());
      });
      this.servers.push(server);
      this.addresses.push({ kind: 'unix', address: `unix:${file}` });
      return;
    }
    if ('tcp' in spec) {
      const { host, port } = typeof spec.tcp === 'string' ? splitHostPort(spec.tcp) : spec.tcp;
      const server = net.createServer((socket) => this.acceptSocket(socket, 'tcp'));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: host ?? '127.0.0.1', port: port ?? 0 }, () => resolve());
      });
      this.servers.push(server);
      const info = server.address() as AddressInfo;
      const shown = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      this.addresses.push({ kind: 'tcp', address: `tcp:${shown}:${info.port}` });
      return;
    }
    const ws = typeof spec.ws === 'string' ? { ...splitHostPort(spec.ws), path: '/' } : spec.ws;
    const { WebSocketServer } = await import('ws');
    const server = new WebSocketServer({
      host: ws.host ?? '127.0.0.1',
      port: ws.port ?? 0,
      path: ws.path ?? '/',
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => resolve());
    });
    const framing = spec.framing ?? 'message';
    server.on('connection', (socket) => {
      const connection = this.attach('ws', new WsIO(socket));
      socket.on('message', (message: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
        const buf = Array.isArray(message)
          ? Buffer.concat(message)
          : Buffer.from(message as ArrayBuffer);
        void isBinary;
        connection.data(
          framing === 'message' && buf[buf.length - 1] !== 0x0a
            ? Buffer.concat([buf, Buffer.from('\n')])
            : buf,
        );
      });
      socket.on('close', () => connection.ended());
      socket.on('error', () => connection.ended());
    });
    this.servers.push({ close: (cb) => server.close(() => cb()) });
    const info = server.address() as AddressInfo;
    const shown = info.family === 'IPv6' ? `[${info.address}]` : info.address;
    this.addresses.push({ kind: 'ws', address: `ws://${shown}:${info.port}${ws.path ?? '/'}` });
  }

  /** The QEMU version the fake imitates (as in its greeting and `query-version`). */
  get version(): QmpVersionInfo {
    return this.data.version;
  }

  /**
   * Serves QMP on a connected socket, as QEMU serves a monitor on an inherited descriptor
   * (`-chardev socket,fd=N`); used by the process mode.
   */
  accept(socket: FakeStream): void {
    this.acceptSocket(socket, 'unix');
  }

  private acceptSocket(socket: FakeStream, kind: 'unix' | 'tcp'): void {
    if (this.dead) {
      socket.destroy();
      return;
    }
    socket.setNoDelay?.(true);
    const io = new StreamIO(socket);
    const connection = this.attach(kind, io);
    socket.on('data', (d) => connection.data(d));
    socket.on('end', () => {
      connection.ended();
      // Node ends our side too (no half-open sockets); a client that never reads would keep
      // this socket and its unsent replies alive for good, so the close is bounded.
      io.close();
    });
    socket.on('close', () => connection.ended());
    socket.on('error', () => connection.ended());
  }

  /** Attaches a client over any transport: returns the connection to feed bytes into. */
  attach(kind: FakeClient['transport'], io: ConnectionIO): Connection {
    const connection = new Connection(this.nextClient++, kind, this.connectionHost, io);
    this.connections.add(connection);
    queueMicrotask(() => connection.start());
    return connection;
  }

  /**
   * A new in-memory client: returns the client's end of a duplex pair, already attached.
   * Pass `{ kind: 'duplex', stream }` (see `pair()`) to `@qmpkit/transport`'s `connect`.
   */
  connectStream(): FakeStream {
    const [client, server] = needNode(nodePlatform, 'an in-memory stream pair').createDuplexPair();
    const connection = this.attach('memory', new StreamIO(server));
    server.on('data', (d: Uint8Array) => connection.data(d));
    server.on('end', () => connection.ended());
    server.on('close', () => connection.ended());
    return client;
  }

  /** `connectStream()` as a transport address. */
  pair(): Extract<QmpAddress, { kind: 'duplex' }> {
    return { kind: 'duplex', stream: this.connectStream(), label: 'fake-qmp:memory' };
  }

  // ---- scripting ----------------------------------------------------------------------

  /** Replaces the fake's behaviour for a command (pass `undefined` to restore it). */
  handle<K extends CommandName>(command: K, handler: CommandHandler<ArgsOf<K>> | undefined): this;
  handle(command: string, handler: CommandHandler | undefined): this;
  handle(command: string, handler: CommandHandler | undefined): this {
    if (!this.data.tables.commands[command])
      throw new FakeQmpUsageError(
        `QEMU ${this.data.tables.qemuVersion} has no command '${command}'`,
      );
    if (handler) this.overrides.set(command, handler);
    else this.overrides.delete(command);
    return this;
  }

  /** Sends an event to every negotiated client now (QEMU's event emission). */
  emit<K extends EventName>(event: K, data?: Events[K]['data']): void;
  emit(event: string, data?: unknown): void;
  emit(event: string, data?: unknown): void {
    if (this.connections.size === 0) return;
    // A program never sends an event its schema lacks (the storage daemon has no SHUTDOWN):
    // the shared model announces what a QEMU would, each program says what it has.
    if (!this.data.tables.events[event]) return;
    const line = this.eventLine(event, data);
    for (const c of this.connections) if (c.negotiated && c.isOpen) c.write(line);
  }

  /** Strict mode: expect `command` next (arguments compared when given). */
  expect<K extends CommandName>(
    command: K,
    args?: Partial<ArgsOf<K>> | ((args: ArgsOf<K>) => boolean),
  ): Expectation;
  expect(command: string, args?: ArgumentsMatcher): Expectation;
  expect(command: string, args?: ArgumentsMatcher): Expectation {
    if (!this.data.tables.commands[command])
      throw new FakeQmpUsageError(
        `QEMU ${this.data.tables.qemuVersion} has no command '${command}'`,
      );
    return this.expectations.add(command, args);
  }

  /** Expected commands not received yet. */
  get pendingExpectations(): readonly Expectation[] {
    return this.expectations.pending;
  }

  /** Adds a fault (see `FaultSpec`); returns a handle to remove it. */
  inject(fault: FaultSpec): FaultHandle {
    return this.faults.add(fault);
  }

  /**
   * Throws when strict expectations were not met (`ExpectationError`, with a diff) or a
   * replay diverged from its recording (`ReplayDivergenceError`).
   */
  verify(): void {
    if (this.expectations.active) this.expectations.verify();
    if (this.options.replay) {
      const leftover = [...this.players].reduce(
        (n, p) => Math.min(n, p.leftover),
        Number.POSITIVE_INFINITY,
      );
      const left = Number.isFinite(leftover)
        ? leftover
        : this.options.replay.records.filter((r) => r.dir === 'in').length;
      if (this.divergences.length > 0 || left > 0)
        throw new ReplayDivergenceError(this.divergences, left);
    }
  }

  // ---- lifecycle ------------------------------------------------------------------------

  private exit(code: number): void {
    if (this.dead) return;
    this.dead = true;
    for (const c of [...this.connections]) c.close();
    void this.closeServers();
    this.resolveExit(code);
  }

  private async closeServers(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.model.close();
    for (const fn of this.cleanup.splice(0)) fn();
  }

  /** Closes every connection and listener (the simulated QEMU is killed). */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.dead = true;
    for (const c of [...this.connections]) c.close();
    await this.closeServers();
    this.resolveExit(-1);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- wire -----------------------------------------------------------------------------

  eventLine(event: string, data: unknown): string {
    const spec = this.data.tables.events[event];
    const body: Record<string, unknown> = { event, timestamp: now() };
    if (data !== undefined) body.data = canonicalize(this.data.tables, spec?.data, data);
    return qemuLine(body);
  }

  private readonly connectionHost: ConnectionHost = this.makeHost();

  private makeHost(): ConnectionHost {
    const fake = this;
    return {
      get maxLineBytes() {
        return fake.maxLineBytes;
      },
      get capabilities() {
        return fake.capabilities;
      },
      greetingLine: () =>
        qemuLine({ QMP: { version: this.data.version, capabilities: this.capabilities } }),
      command: (name) => {
        const spec = this.data.tables.commands[name];
        return spec ? { args: spec.args, allowOob: spec.allowOob === true } : undefined;
      },
      checkArgs: (command, args: QemuDict) => {
        const spec = this.data.tables.commands[command];
        // 'gen': false commands (device_add) check their own arguments.
        if (!spec || spec.openArgs) return undefined;
        return checkArguments(this.data.tables, spec.args, args, this.data.integers);
      },
      resolve: (command, args) => this.resolve(command, args),
      emit: (event, payload) => this.emit(event, payload),
      eventLine: (event, payload) => this.eventLine(event, payload),
      replyLine: (command, value, id) => {
        const spec = command === undefined ? undefined : this.data.tables.commands[command];
        const ret = canonicalize(this.data.tables, spec?.returns, value);
        return qemuLine(id === undefined ? { return: ret } : { return: ret, id });
      },
      faultsForGreeting: (client) => this.faults.greeting(client),
      faultsForReply: (client, command) =>
        this.faults.empty ? [] : this.faults.reply(client, command),
      dropAfter: (client) => (this.faults.empty ? undefined : this.faults.dropAfter(client)),
      record: (entry) => {
        if (this.historyLimit > 0) {
          this.historyList.push(entry);
          if (this.historyList.length > this.historyLimit) this.historyList.shift();
        }
        if (this.waiters.length > 0 && entry.command !== undefined) {
          for (let i = 0; i < this.waiters.length; i++) {
            const w = this.waiters[i]!;
            if (w.command === entry.command) {
              this.waiters.splice(i--, 1);
              w.resolve(entry);
            }
          }
        }
      },
      replayPlayer: (connection) => {
        const conversation = this.options.replay;
        if (!conversation) return undefined;
        const player = new ReplayPlayer(
          conversation,
          (line, delay) => {
            if (delay > 0) setTimeout(() => connection.write(line), delay);
            else connection.write(line);
          },
          (d) => this.divergences.push(d),
          this.options.replayTiming ?? 'asap',
        );
        this.players.add(player);
        return player;
      },
      closed: (connection) => {
        this.connections.delete(connection);
      },
    };
  }

  private resolve(command: string, args: Record<string, unknown>): CommandHandler {
    const model = this.modelHandlers.get(command);
    const base: CommandHandler =
      model ??
      (() => {
        throw qmpError(
          `qmpkit fake-qmp does not model '${command}' (QEMU ${this.data.tables.qemuVersion} has it)`,
        );
      });
    const override = this.overrides.get(command);
    const withFallback =
      (handler: CommandHandler): CommandHandler =>
      (a, ctx: CommandContext) =>
        handler(a, { ...ctx, fallback: () => base(a, ctx) });
    if (this.expectations.active) {
      return withFallback(this.expectations.take(command, args, override ?? base));
    }
    return override ? withFallback(override) : base;
  }
}

/** `block-export-add` arguments the schema check let through, read as the model's. */
function exportArgs(value: Record<string, unknown>): ExportAddArgs {
  const { type, id, name, writable, bitmaps } = value;
  const node = value['node-name'];
  if (typeof type !== 'string') throw qmpError("Parameter 'type' is missing");
  if (typeof id !== 'string') throw qmpError("Parameter 'id' is missing");
  if (typeof node !== 'string') throw qmpError("Parameter 'node-name' is missing");
  return {
    type,
    id,
    'node-name': node,
    ...(typeof name === 'string' ? { name } : {}),
    ...(typeof writable === 'boolean' ? { writable } : {}),
    // Bitmaps by name (the model reads names; `{node, name}` entries name a bitmap too).
    ...(Array.isArray(bitmaps)
      ? {
          bitmaps: bitmaps.map((b) =>
            typeof b === 'object' && b !== null
              ? String((b as { name?: unknown }).name)
              : String(b),
          ),
        }
      : {}),
  };
}

function splitHostPort(text: string): { host?: string; port?: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) throw new FakeQmpUsageError(`expected HOST:PORT, got '${text}'`);
  const host = m[1] ?? m[2];
  return { ...(host ? { host } : {}), port: Number(m[3]) };
}

/** Options of a fake `qemu-storage-daemon`: no machine, so no VM options. */
export type FakeStorageDaemonOptions = Omit<
  FakeQmpOptions,
  | 'personality'
  | 'machine'
  | 'machineType'
  | 'paused'
  | 'incoming'
  | 'device'
  | 'memoryBackend'
  | 'ramBytes'
  | 'dirtyRate'
  | 'vmStateSize'
>;

/**
 * Creates a fake `qemu-storage-daemon` (the daemon's greeting, schema and command set; the same
 * block graph, jobs, bitmaps and exports as the system emulator's fake) and starts its listeners.
 */
export async function createFakeStorageDaemon(
  options: FakeStorageDaemonOptions = {},
): Promise<FakeQmp> {
  return createFakeQmp({ ...options, personality: 'storage-daemon' });
}

/** Creates a fake QMP server and starts its listeners. */
export async function createFakeQmp(options: FakeQmpOptions = {}): Promise<FakeQmp> {
  const fake = new FakeQmp(options);
  await fake.listen();
  return fake;
}
