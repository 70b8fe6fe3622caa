/**
 * Process mode of the storage-daemon personality: the fake as a stand-in `qemu-storage-daemon`
 * for code that spawns one (`launchStorageDaemon({ qemu: <this executable> })`). It reads the
 * daemon's command line as the daemon does (`getopt_long`: long options with a separate or an
 * `=` value, `-h`/`-V`/`-T`), opens what it describes (`--blockdev`, `--object`,
 * `--nbd-server`, `--export`), serves QMP on each `--monitor chardev=ID` whose `--chardev
 * socket,id=ID,…` is an inherited descriptor (`fd=N`) or a listening UNIX socket
 * (`path=P,server=on`), writes `--pidfile`, and exits 0 after `quit`.
 *
 * A command line the daemon refuses is refused with its words and exit code 1: an unknown
 * option (`<argv0>: unrecognized option '--x'`, `invalid option -- 'x'`), a missing value
 * (`option '--blockdev' requires an argument`), a stray argument (`qemu-storage-daemon: x:
 * Unexpected argument`). Values of `--blockdev`, `--object`, `--nbd-server` and `--export`
 * are JSON (what `launchStorageDaemon` passes) or QEMU's key=value syntax (what people type),
 * read through the daemon's schema (protocol/keyval.ts).
 *
 * Switches of the fake (never the daemon's): `--fake-version=7.2|10.0` (default: qapi's
 * default), `--fake-fail=COMMAND` (repeatable), `--fake-no-greeting`.
 */
import { unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DEFAULT_QEMU_VERSION } from '@qmpkit/qapi';
import { tables as qsdTables72 } from '@qmpkit/qapi/qsd-7.2';
import { tables as qsdTables100 } from '@qmpkit/qapi/qsd-10.0';
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import { integerMembers as qsdIntegers72 } from './data/qsd-7.2.generated.js';
import { integerMembers as qsdIntegers100 } from './data/qsd-10.0.generated.js';
import { FakeQmpUsageError, isQmpReplyError, qmpError } from './errors.js';
import { isKeyvalError, keyvalToJson, parseKeyval } from './protocol/keyval.js';
import type { IntegerMembers } from './protocol/visitor.js';

/** The daemon's schema: its tables and the sized integers its source names. */
interface DaemonSchema {
  readonly tables: SchemaTables;
  readonly integers: IntegerMembers;
}

import {
  createFakeStorageDaemon,
  FAKE_QEMU_VERSIONS,
  type FakeQemuVersion,
  type FakeQmp,
  type ListenOption,
} from './server/fake.js';

export interface FakeStorageDaemonIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The program name getopt prints in its messages (the daemon's `argv[0]`). */
  readonly argv0?: string;
  /** Opens the inherited descriptor `fd` as a socket (the default wraps `net.Socket`). */
  readonly openFd?: (fd: number) => net.Socket;
}

/** A monitor the daemon serves: on an inherited descriptor or a listening UNIX socket. */
export type FakeDaemonMonitor =
  | { readonly kind: 'fd'; readonly fd: number }
  | { readonly kind: 'unix'; readonly path: string };

/** One `--blockdev`/`--object`/`--nbd-server`/`--export`, in command-line order. */
export interface FakeDaemonAction {
  readonly option: 'blockdev' | 'object' | 'nbd-server' | 'export';
  /** The value as given (the daemon quotes it in its errors). */
  readonly text: string;
  /** The value read as the daemon reads it (JSON, or key=value through the schema). */
  readonly args: Record<string, unknown>;
}

export interface FakeStorageDaemonCommandLine {
  readonly qemuVersion: FakeQemuVersion;
  /** What the daemon opens at start, in order (see `openDaemonActions`). */
  readonly actions: readonly FakeDaemonAction[];
  readonly monitors: readonly FakeDaemonMonitor[];
  readonly pidfile: string | undefined;
  readonly help: boolean;
  readonly version: boolean;
  readonly fail: readonly string[];
  readonly noGreeting: boolean;
}

/** The daemon refused its command line: `text` goes to stderr, the exit code is 1. */
export class FakeDaemonCommandLineError extends Error {
  override readonly name = 'FakeDaemonCommandLineError' as const;
  constructor(
    readonly text: string,
    options?: ErrorOptions,
  ) {
    super(text, options);
  }
}

/** The daemon's long options and whether they take a value (QEMU 7.2 and 10.0 alike). */
const LONG_OPTIONS: ReadonlyMap<string, boolean> = new Map([
  ['blockdev', true],
  ['chardev', true],
  ['daemonize', false],
  ['export', true],
  ['help', false],
  ['monitor', true],
  ['nbd-server', true],
  ['object', true],
  ['pidfile', true],
  ['trace', true],
  ['version', false],
]);

/** Key=value list (`socket,id=qmp,fd=3`): the first bare word is `''` (or `implied`'s key). */
function keyValues(text: string, implied = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) out.set(out.has(implied) ? part : implied, out.has(implied) ? 'on' : part);
    else out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

/**
 * An option value as the daemon reads it: JSON when it starts with `{`, else QEMU's key=value
 * syntax read as schema type `type` (`impliedKey` names a first bare value).
 */
function optionObject(
  schema: DaemonSchema,
  option: string,
  text: string,
  type: string | undefined,
  impliedKey?: string,
): Record<string, unknown> {
  if (text.trimStart().startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch (error) {
      throw new FakeQmpUsageError(`--${option}: ${(error as Error).message}`, { cause: error });
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      return value as Record<string, unknown>;
    throw new FakeQmpUsageError(`--${option}: expected a JSON object`);
  }
  const tree = parseKeyval(text, impliedKey);
  if (type === undefined) return tree;
  return keyvalToJson(schema.tables, type, tree, '', schema.integers) as Record<string, unknown>;
}

/** `--nbd-server` (the daemon's own NbdServerOptions, which its QMP schema does not list). */
function nbdServerOptions(schema: DaemonSchema, text: string): Record<string, unknown> {
  if (text.trimStart().startsWith('{')) {
    const raw = optionObject(schema, 'nbd-server', text, undefined);
    const { addr } = raw;
    if (addr === null || typeof addr !== 'object' || Array.isArray(addr))
      throw qmpError("Parameter 'addr' is missing");
    return raw;
  }
  const { addr, 'max-connections': max, ...rest } = parseKeyval(text);
  if (addr === undefined || typeof addr === 'string' || Array.isArray(addr))
    throw qmpError("Parameter 'addr' is missing");
  const { tables, integers } = schema;
  return {
    ...rest,
    addr: keyvalToJson(tables, 'SocketAddress', addr, 'addr', integers),
    ...(max === undefined
      ? {}
      : { 'max-connections': keyvalToJson(tables, 'uint32', max, 'max-connections') }),
  };
}

const on = (v: string | undefined) => v === 'on' || v === 'yes' || v === 'true';

/** Reads the daemon's command line (and the fake's switches). */
export function parseStorageDaemonCommandLine(
  argv: readonly string[],
  argv0 = 'qemu-storage-daemon',
): FakeStorageDaemonCommandLine {
  const actions: FakeDaemonAction[] = [];
  const chardevs = new Map<string, FakeDaemonMonitor>();
  const monitorIds: string[] = [];
  const fail: string[] = [];
  let pidfile: string | undefined;
  let help = false;
  let version = false;
  let noGreeting = false;
  let qemuVersion = DEFAULT_QEMU_VERSION as FakeQemuVersion;
  const pending: { name: string; value: string }[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--fake-')) {
      if (arg.startsWith('--fake-fail=')) fail.push(arg.slice('--fake-fail='.length));
      else if (arg === '--fake-no-greeting') noGreeting = true;
      else if (arg.startsWith('--fake-version=')) {
        const v = arg.slice('--fake-version='.length);
        const known = FAKE_QEMU_VERSIONS.find((k) => k === v);
        if (!known)
          throw new FakeDaemonCommandLineError(
            `${argv0}: --fake-version: the fake imitates QEMU ${FAKE_QEMU_VERSIONS.join(', ')}, not '${v}'`,
          );
        qemuVersion = known;
      } else throw new FakeDaemonCommandLineError(`${argv0}: unrecognized option '${arg}'`);
      continue;
    }
    if (arg === '--') {
      // getopt stops here; whatever follows is a stray argument.
      const stray = argv[i + 1];
      if (stray !== undefined)
        throw new FakeDaemonCommandLineError(`qemu-storage-daemon: ${stray}: Unexpected argument`);
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const takes = LONG_OPTIONS.get(name);
      if (takes === undefined)
        throw new FakeDaemonCommandLineError(`${argv0}: unrecognized option '${arg}'`);
      if (!takes) {
        if (eq >= 0)
          throw new FakeDaemonCommandLineError(
            `${argv0}: option '--${name}' doesn't allow an argument`,
          );
        if (name === 'help') help = true;
        else if (name === 'version') version = true;
        // --daemonize: the fake stays in the foreground (its parent keeps its pid).
        continue;
      }
      let value: string | undefined;
      if (eq >= 0) value = arg.slice(eq + 1);
      else value = argv[++i];
      if (value === undefined)
        throw new FakeDaemonCommandLineError(`${argv0}: option '--${name}' requires an argument`);
      pending.push({ name, value });
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // Short options: -h, -V, -T VALUE (clustered like getopt).
      for (let k = 1; k < arg.length; k++) {
        const c = arg[k]!;
        if (c === 'h') help = true;
        else if (c === 'V') version = true;
        else if (c === 'T') {
          const rest = arg.slice(k + 1);
          if (rest === '' && argv[i + 1] === undefined)
            throw new FakeDaemonCommandLineError(`${argv0}: option requires an argument -- 'T'`);
          if (rest === '') i++;
          break;
        } else throw new FakeDaemonCommandLineError(`${argv0}: invalid option -- '${c}'`);
      }
      continue;
    }
    throw new FakeDaemonCommandLineError(`qemu-storage-daemon: ${arg}: Unexpected argument`);
  }
  const schema: DaemonSchema =
    qemuVersion === '10.0'
      ? { tables: qsdTables100, integers: qsdIntegers100 }
      : { tables: qsdTables72, integers: qsdIntegers72 };
  // The daemon reads --help/--version first (they exit), then acts on the rest in order.
  for (const { name, value } of help || version ? [] : pending) {
    switch (name) {
      case 'blockdev':
      case 'object':
      case 'export':
      case 'nbd-server':
        try {
          const args =
            name === 'nbd-server'
              ? nbdServerOptions(schema, value)
              : name === 'blockdev'
                ? optionObject(schema, name, value, 'BlockdevOptions')
                : name === 'object'
                  ? optionObject(schema, name, value, 'ObjectOptions', 'qom-type')
                  : optionObject(schema, name, value, 'BlockExportOptions', 'type');
          actions.push({ option: name, text: value, args });
        } catch (error) {
          throw optionError(name, value, error);
        }
        break;
      case 'chardev': {
        const kv = keyValues(value, 'backend');
        const id = kv.get('id');
        if (id === undefined) throw qmpError("Parameter 'id' is missing");
        if (kv.get('backend') !== 'socket')
          throw new FakeQmpUsageError(
            `qmpkit fake qemu-storage-daemon serves QMP on socket chardevs only, not '${kv.get('backend') ?? ''}'`,
          );
        const fd = kv.get('fd');
        const file = kv.get('path');
        if (fd !== undefined) chardevs.set(id, { kind: 'fd', fd: Number(fd) });
        else if (file !== undefined && on(kv.get('server')))
          chardevs.set(id, { kind: 'unix', path: file });
        else
          throw new FakeQmpUsageError(
            'qmpkit fake qemu-storage-daemon serves QMP on fd=N or path=P,server=on sockets only',
          );
        break;
      }
      case 'monitor': {
        const kv = keyValues(value, 'chardev');
        const mode = kv.get('mode') ?? 'control';
        if (mode !== 'control') throw qmpError(`Invalid parameter 'mode'`);
        const id = kv.get('chardev');
        if (id === undefined) throw qmpError("Parameter 'chardev' is missing");
        if (!chardevs.has(id)) throw qmpError(`chardev "${id}" not found`);
        monitorIds.push(id);
        break;
      }
      case 'pidfile':
        pidfile = value;
        break;
      // --trace: nothing to trace.
    }
  }
  return {
    qemuVersion,
    actions,
    monitors: monitorIds.map((id) => chardevs.get(id)!),
    pidfile,
    help,
    version,
    fail,
    noGreeting,
  };
}

/** The daemon's words for a refused option value: `qemu-storage-daemon: --OPT VALUE: why`. */
function optionError(option: string, text: string, error: unknown): FakeDaemonCommandLineError {
  return new FakeDaemonCommandLineError(
    `qemu-storage-daemon: --${option} ${text}: ${errorText(error)}`,
    { cause: error },
  );
}

/**
 * Opens the command line's nodes, objects, NBD server and exports on `fake` in order, as the
 * daemon does before it serves QMP; the first refusal is a `FakeDaemonCommandLineError` with
 * the daemon's words (`qemu-storage-daemon: --export nbd,id=e0,node-name=x: NBD server not
 * running`).
 */
export function openDaemonActions(fake: FakeQmp, actions: readonly FakeDaemonAction[]): void {
  for (const action of actions) {
    try {
      fake.openAtStart(action.option, action.args);
    } catch (error) {
      throw optionError(action.option, action.text, error);
    }
  }
}

const COPYRIGHT_YEAR: Record<FakeQemuVersion, number> = { '7.2': 2022, '10.0': 2025 };

function errorText(error: unknown): string {
  if (isQmpReplyError(error)) return error.desc;
  if (isKeyvalError(error)) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs the fake storage daemon until `quit`; resolves with the exit code (1 for a refused
 * command line, like the daemon). Signals are left to the caller: by default they end the
 * process.
 */
export async function runFakeStorageDaemon(
  argv: readonly string[],
  io: FakeStorageDaemonIo,
): Promise<number> {
  const argv0 = io.argv0 ?? 'qemu-storage-daemon';
  let line: FakeStorageDaemonCommandLine;
  try {
    line = parseStorageDaemonCommandLine(argv, argv0);
  } catch (error) {
    io.stderr(
      error instanceof FakeDaemonCommandLineError
        ? `${error.text}\n`
        : `qemu-storage-daemon: ${errorText(error)}\n`,
    );
    return 1;
  }
  if (line.help) {
    io.stdout(
      `Usage: ${argv0} [options]\nQEMU storage daemon (imitated by qmpkit fake-qmp)\n\n` +
        `  -h, --help             display this help and exit\n  -V, --version          output version information and exit\n` +
        `  --blockdev, --chardev, --export, --monitor, --nbd-server, --object, --pidfile\n`,
    );
    return 0;
  }
  let fake: FakeQmp;
  try {
    const listen: ListenOption[] = line.monitors.flatMap((m) =>
      m.kind === 'unix' ? [{ unix: path.resolve(m.path) }] : [],
    );
    fake = await createFakeStorageDaemon({
      qemuVersion: line.qemuVersion,
      storage: 'host',
      ...(listen.length > 0 ? { listen } : {}),
    });
  } catch (error) {
    io.stderr(`qemu-storage-daemon: ${errorText(error)}\n`);
    return 1;
  }
  if (line.version) {
    const { qemu, package: pkg } = fake.version;
    io.stdout(
      `qemu-storage-daemon version ${qemu.major}.${qemu.minor}.${qemu.micro} (${pkg})\nCopyright (c) 2003-${COPYRIGHT_YEAR[line.qemuVersion]} Fabrice Bellard and the QEMU Project developers\n`,
    );
    await fake.close();
    return 0;
  }
  try {
    openDaemonActions(fake, line.actions);
  } catch (error) {
    io.stderr(`${error instanceof FakeDaemonCommandLineError ? error.text : errorText(error)}\n`);
    await fake.close();
    return 1;
  }
  if (line.noGreeting) fake.inject({ kind: 'stall-greeting' });
  for (const command of line.fail)
    fake.handle(command, () => {
      throw qmpError('refused by the fake');
    });
  if (line.pidfile !== undefined) {
    try {
      writeFileSync(line.pidfile, `${process.pid}\n`);
    } catch (error) {
      io.stderr(`qemu-storage-daemon: Cannot write pid file: ${errorText(error)}\n`);
      await fake.close();
      return 1;
    }
  }
  for (const m of line.monitors)
    if (m.kind === 'fd')
      fake.accept(
        (io.openFd ?? ((fd) => new net.Socket({ fd, readable: true, writable: true })))(m.fd),
      );
  // The daemon keeps running when a monitor's peer goes away; only `quit` ends it.
  const alive = setInterval(() => {}, 60_000);
  const code = await fake.exited;
  clearInterval(alive);
  await fake.close();
  if (line.pidfile !== undefined) {
    try {
      unlinkSync(line.pidfile);
    } catch {
      // Already gone (its directory removed by whoever started us): nothing left to clean.
    }
  }
  return code;
}
