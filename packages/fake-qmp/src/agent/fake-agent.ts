/**
 * A fake QEMU guest agent (qemu-ga 7.2 or 10.0 on the wire): the same schema tables as the
 * typed client (`@qmpkit/qapi/qga-7.2`, `qga-10.0`), QEMU's JSON parser and argument checks (shared with the
 * fake QMP server), the agent's framing (`\n`-terminated replies, ids echoed, 0xFF before a
 * `guest-sync-delimited` reply, the parse error a 0xFF byte earns), a small in-memory
 * filesystem behind `guest-file-*`, scripted programs behind `guest-exec`, and the freeze
 * state machine (commands outside qemu-ga's allow-list are disabled while frozen). State
 * lives in the agent, not the connection: like the real port, it outlives clients.
 * Every reply text here was measured on qemu-ga 7.2 and 10.0 (test/contract/agent.qemu.test.ts).
 */
import { rmSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { tables as qga72 } from '@qmpkit/qapi/qga-7.2';
import { tables as qga100 } from '@qmpkit/qapi/qga-10.0';
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import { FakeQmpUsageError } from '../errors.js';
import { isDict, type QemuDict, type QemuValue } from '../json/values.js';
import { writeQemuJson } from '../json/writer.js';
import { RequestReader } from '../protocol/input.js';
import { checkArguments } from '../protocol/visitor.js';

/** What a scripted program gets. */
export interface FakeExecRequest {
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly stdin: Uint8Array;
}

/** What a scripted program did. */
export interface FakeExecResult {
  readonly exitcode?: number;
  readonly signal?: number;
  readonly stdout?: string | Uint8Array;
  readonly stderr?: string | Uint8Array;
}

export type FakeProgram = (request: FakeExecRequest) => FakeExecResult;

export interface FakeGuestAgentOptions {
  /** The qemu-ga it answers like: its schema and its wording (default `7.2`). */
  readonly agent?: '7.2' | '10.0';
  /** `guest-info`'s version (default `7.2.22`, or `10.0.0` for `agent: '10.0'`). */
  readonly version?: string;
  /** Files of the in-memory filesystem, by absolute path. */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
  /** Directories that exist besides the parents of `files` (default `/`, `/run`, `/tmp`). */
  readonly dirs?: readonly string[];
  /** Programs `guest-exec` can start, by path. Others fail like a missing file. */
  readonly programs?: Readonly<Record<string, FakeProgram>>;
  /** How many filesystems `guest-fsfreeze-freeze` freezes (default 1). */
  readonly freezable?: number;
  /** Called when `guest-shutdown` ran; the connection is closed after it. */
  readonly onShutdown?: (mode: string) => void;
}

/** Commands qemu-ga still runs while the filesystems are frozen (qga/main.c). */
const FROZEN_ALLOWED = new Set([
  'guest-ping',
  'guest-info',
  'guest-sync',
  'guest-sync-delimited',
  'guest-fsfreeze-status',
  'guest-fsfreeze-thaw',
]);
const READ_COUNT_DEFAULT = 4096;
const FIRST_HANDLE = 1000;
const FILE_MODES = new Set([
  'r',
  'rb',
  'r+',
  'rb+',
  'r+b',
  'w',
  'wb',
  'w+',
  'wb+',
  'w+b',
  'a',
  'ab',
  'a+',
  'ab+',
  'a+b',
]);

interface OpenFile {
  readonly path: string;
  readonly mode: string;
  position: number;
}

class AgentError {
  constructor(
    readonly desc: string,
    readonly errorClass = 'GenericError',
  ) {}
}

const bytesOf = (data: string | Uint8Array | undefined): Buffer =>
  data === undefined
    ? Buffer.alloc(0)
    : typeof data === 'string'
      ? Buffer.from(data, 'utf8')
      : Buffer.from(data);

export class FakeGuestAgent {
  /** Command names in the order they were received (all connections). */
  readonly received: string[] = [];
  private readonly files = new Map<string, Buffer>();
  private readonly dirs = new Set<string>();
  private readonly programs: Readonly<Record<string, FakeProgram>>;
  private readonly handles = new Map<number, OpenFile>();
  private readonly processes = new Map<number, FakeExecResult>();
  private nextHandle = FIRST_HANDLE;
  private nextPid = 100;
  private frozenCount = 0;
  private frozen = false;
  private readonly options: FakeGuestAgentOptions;
  private readonly tables: SchemaTables;
  private readonly v10: boolean;

  constructor(options: FakeGuestAgentOptions = {}) {
    this.options = options;
    this.v10 = options.agent === '10.0';
    this.tables = this.v10 ? qga100 : qga72;
    for (const d of options.dirs ?? ['/', '/run', '/tmp']) this.dirs.add(d);
    for (const [path, data] of Object.entries(options.files ?? {}))
      this.files.set(path, bytesOf(data));
    this.programs = options.programs ?? {};
  }

  /** The in-memory file at `path`, if any. */
  file(path: string): Uint8Array | undefined {
    const data = this.files.get(path);
    return data === undefined ? undefined : new Uint8Array(data);
  }

  get fsfreezeStatus(): 'frozen' | 'thawed' {
    return this.frozen ? 'frozen' : 'thawed';
  }

  /** Serves one client on `stream` (a connected socket, a socketpair end). */
  attach(stream: Duplex): void {
    const send = (value: unknown, delimited = false): void => {
      if (stream.destroyed) return;
      stream.write(
        delimited
          ? Buffer.concat([Buffer.from([0xff]), Buffer.from(`${writeQemuJson(value)}\n`)])
          : `${writeQemuJson(value)}\n`,
      );
    };
    const reader = new RequestReader(
      {
        request: (value) => this.request(value, send, stream),
        parseError: (desc) => send({ error: { class: 'GenericError', desc } }),
        overflow: () => stream.destroy(),
      },
      64 * 1024 * 1024,
    );
    stream.on('data', (chunk: Buffer) => reader.push(chunk));
    stream.on('error', () => stream.destroy());
  }

  /** Listens on a UNIX socket like `-chardev socket,server=on`; resolves with a closer. */
  async listen(path: string): Promise<{ close(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      this.attach(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return {
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        rmSync(path, { force: true });
      },
    };
  }

  private request(
    value: QemuValue,
    send: (v: unknown, delimited?: boolean) => void,
    stream: Duplex,
  ): void {
    if (!isDict(value)) {
      send({ error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const id = value.id;
    const reply = (body: Record<string, unknown>, delimited = false) =>
      send(id === undefined ? body : { ...body, id }, delimited);
    const command = value.execute;
    if (command === undefined) {
      reply({ error: { class: 'GenericError', desc: "QMP input lacks member 'execute'" } });
      return;
    }
    if (typeof command !== 'string') {
      reply({
        error: { class: 'GenericError', desc: "QMP input member 'execute' must be a string" },
      });
      return;
    }
    this.received.push(command);
    const spec = this.tables.commands[command];
    if (spec === undefined) {
      reply({
        error: { class: 'CommandNotFound', desc: `The command ${command} has not been found` },
      });
      return;
    }
    if (this.frozen && !FROZEN_ALLOWED.has(command)) {
      const why = this.v10 ? 'the command is not allowed' : 'the agent is in frozen state';
      reply({
        error: { class: 'CommandNotFound', desc: `Command ${command} has been disabled: ${why}` },
      });
      return;
    }
    const args = value.arguments ?? {};
    if (!isDict(args)) {
      reply({
        error: { class: 'GenericError', desc: "QMP input member 'arguments' must be an object" },
      });
      return;
    }
    const problem = checkArguments(this.tables, spec.args, args);
    if (problem !== undefined) {
      reply({ error: { class: 'GenericError', desc: problem } });
      return;
    }
    try {
      if (command === 'guest-sync-delimited') {
        reply({ return: args.id }, true);
        return;
      }
      if (command === 'guest-shutdown') {
        // Success sends nothing: the guest goes down, the channel with it.
        this.options.onShutdown?.(typeof args.mode === 'string' ? args.mode : 'powerdown');
        stream.destroy();
        return;
      }
      reply({ return: this.run(command, args) });
    } catch (error) {
      if (!(error instanceof AgentError)) throw error;
      reply({ error: { class: error.errorClass, desc: error.desc } });
    }
  }

  private run(command: string, args: QemuDict): unknown {
    switch (command) {
      case 'guest-sync':
        return args.id;
      case 'guest-ping':
        return {};
      case 'guest-info':
        return {
          version: this.options.version ?? (this.v10 ? '10.0.0' : '7.2.22'),
          supported_commands: Object.keys(this.tables.commands).map((name) => ({
            enabled: !this.frozen || FROZEN_ALLOWED.has(name),
            name,
            'success-response': ![
              'guest-shutdown',
              'guest-suspend-disk',
              'guest-suspend-ram',
              'guest-suspend-hybrid',
            ].includes(name),
          })),
        };
      case 'guest-file-open':
        return this.open(String(args.path), typeof args.mode === 'string' ? args.mode : 'r');
      case 'guest-file-read': {
        const f = this.handle(args.handle);
        const data = this.files.get(f.path) ?? Buffer.alloc(0);
        const count = typeof args.count === 'number' ? args.count : READ_COUNT_DEFAULT;
        const piece = data.subarray(f.position, f.position + count);
        f.position += piece.length;
        return {
          count: piece.length,
          'buf-b64': piece.toString('base64'),
          eof: piece.length < count,
        };
      }
      case 'guest-file-write': {
        const f = this.handle(args.handle);
        const bytes = Buffer.from(String(args['buf-b64']), 'base64');
        const count = typeof args.count === 'number' ? args.count : bytes.length;
        const piece = bytes.subarray(0, count);
        const data = this.files.get(f.path) ?? Buffer.alloc(0);
        const at = f.mode.startsWith('a') ? data.length : f.position;
        const grown = Buffer.alloc(Math.max(data.length, at + piece.length));
        data.copy(grown);
        piece.copy(grown, at);
        this.files.set(f.path, grown);
        f.position = at + piece.length;
        return { count: piece.length, eof: false };
      }
      case 'guest-file-flush':
        this.handle(args.handle);
        return {};
      case 'guest-file-close':
        this.handle(args.handle);
        this.handles.delete(Number(args.handle));
        return {};
      case 'guest-exec':
        return this.exec(args);
      case 'guest-exec-status': {
        const r = this.processes.get(Number(args.pid));
        if (r === undefined)
          // 10.0's text is what qemu-ga 10.0 really prints (a format string gone wrong).
          throw new AgentError(this.v10 ? 'PID ld does not exist' : "Invalid parameter 'pid'");
        // Reported once, then forgotten (qemu-ga frees an exited process on its status call).
        this.processes.delete(Number(args.pid));
        const out = bytesOf(r.stdout);
        const err = bytesOf(r.stderr);
        return {
          exited: true,
          ...(r.signal !== undefined ? { signal: r.signal } : { exitcode: r.exitcode ?? 0 }),
          // 7.2 adds `*-truncated: false` beside captured output; 10.0 only when true.
          ...(out.length > 0 ? { 'out-data': out.toString('base64') } : {}),
          ...(out.length > 0 && !this.v10 ? { 'out-truncated': false } : {}),
          ...(err.length > 0 ? { 'err-data': err.toString('base64') } : {}),
          ...(err.length > 0 && !this.v10 ? { 'err-truncated': false } : {}),
        };
      }
      case 'guest-fsfreeze-status':
        return this.fsfreezeStatus;
      case 'guest-fsfreeze-freeze':
      case 'guest-fsfreeze-freeze-list':
        this.frozen = true;
        this.frozenCount = this.options.freezable ?? 1;
        return this.frozenCount;
      case 'guest-fsfreeze-thaw': {
        const n = this.frozen ? this.frozenCount : 0;
        this.frozen = false;
        this.frozenCount = 0;
        return n;
      }
      case 'guest-network-get-interfaces':
        return [{ name: 'lo', 'hardware-address': '00:00:00:00:00:00' }];
      default:
        throw new FakeQmpUsageError(`the fake guest agent does not model ${command}`);
    }
  }

  private open(path: string, mode: string): number {
    if (!FILE_MODES.has(mode)) throw new AgentError(`invalid file open mode '${mode}'`);
    const exists = this.files.has(path);
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    const parentExists =
      this.dirs.has(parent) || [...this.files.keys()].some((f) => f.startsWith(`${parent}/`));
    if (!exists && (mode.startsWith('r') || !parentExists))
      throw new AgentError(
        `failed to open file '${path}' (mode: '${mode}'): No such file or directory`,
      );
    if (mode.startsWith('w')) this.files.set(path, Buffer.alloc(0));
    else if (!exists) this.files.set(path, Buffer.alloc(0));
    const handle = this.nextHandle++;
    this.handles.set(handle, { path, mode, position: 0 });
    return handle;
  }

  private handle(value: unknown): OpenFile {
    const f = this.handles.get(Number(value));
    if (f === undefined) throw new AgentError(`handle '${String(value)}' has not been found`);
    return f;
  }

  private exec(args: QemuDict): { pid: number } {
    const path = String(args.path);
    const program = this.programs[path];
    if (program === undefined) {
      const glib = `Failed to execute child process “${path}” (No such file or directory)`;
      throw new AgentError(this.v10 ? glib : `Guest agent command failed, error was '${glib}'`);
    }
    const argv = [path, ...(Array.isArray(args.arg) ? args.arg.map(String) : [])];
    const env = Array.isArray(args.env) ? args.env.map(String) : [];
    const stdin = Buffer.from(
      typeof args['input-data'] === 'string' ? args['input-data'] : '',
      'base64',
    );
    const result = program({ argv, env, stdin: new Uint8Array(stdin) });
    const pid = this.nextPid++;
    // Output is reported only when captured, like qemu-ga.
    const captured = args['capture-output'] === true;
    const { stdout, stderr, ...status } = result;
    this.processes.set(pid, captured ? result : status);
    return { pid };
  }
}
