/**
 * Process mode: the fake as a stand-in *QEMU process*, for testing code that spawns and
 * supervises QEMU (launch, stop escalation, crash handling) without QEMU. It takes QEMU's
 * command line, serves QMP on the monitor QEMU would (`-chardev socket,id=ID,fd=N` +
 * `-mon chardev=ID,mode=control`, an inherited descriptor), simulates what the command line
 * describes (`-machine`, `-S`, `-incoming`, `-blockdev`/`-device`/`-object` in JSON form),
 * ignores the rest, and exits when the simulated QEMU does (`quit`, code 0).
 *
 * Misbehaviour switches (not QEMU options, so they never clash with real ones):
 *   --fake-ignore-quit      `quit` is answered but the process keeps running
 *   --fake-ignore-term      SIGTERM is ignored (only SIGKILL ends the process)
 *   --fake-fail=COMMAND     COMMAND fails with a GenericError ("refused by the fake");
 *                           repeatable
 *   --fake-no-greeting      the monitor never greets
 *   --fake-exit=CODE:TEXT   write TEXT to stderr and exit with CODE at once (a QEMU that
 *                           refuses its command line)
 * Unlike QEMU 7.2, which catches SIGTERM/SIGINT and exits 0 after a SHUTDOWN event, the
 * process dies by the signal (exit code null, signal set).
 */
import net from 'node:net';
import { DEFAULT_QEMU_VERSION } from '@qmpkit/qapi';
import { FakeQmpUsageError, qmpError } from './errors.js';
import { machineHelp, resolveMachineType } from './model/machine-types.js';
import { createFakeQmp, type FakeQmpOptions } from './server/fake.js';

export interface FakeQemuIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Opens the inherited descriptor `fd` as a socket (the default wraps `net.Socket`). */
  readonly openFd?: (fd: number) => net.Socket;
}

export interface FakeQemuCommandLine {
  readonly options: FakeQmpOptions;
  /** The descriptor of the QMP monitor, when the command line has one. */
  readonly monitorFd: number | undefined;
  readonly ignoreQuit: boolean;
  readonly ignoreTerm: boolean;
  readonly noGreeting: boolean;
  readonly fail: readonly string[];
  readonly exit: { readonly code: number; readonly text: string } | undefined;
  readonly version: boolean;
  /** `-machine help`: print the machine types and exit. */
  readonly machineHelp: boolean;
}

/** QEMU's size suffixes for `-m` (a bare number is MiB). */
function memoryBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$/.exec(text);
  if (!m) return undefined;
  const unit = { '': 2 ** 20, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    (m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.round(Number(m[1]) * unit);
}

/** Key=value list of a QEMU option (`socket,id=qmp,fd=3`); the first bare word is `''`. */
function keyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) out.set(out.has('') ? part : '', part);
    else out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

function json(option: string, text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new FakeQmpUsageError(
    `qmpkit fake QEMU reads ${option} in JSON form only, got '${text.slice(0, 80)}'`,
  );
}

/** Reads the QEMU command line (and the fake's switches). */
export function parseQemuCommandLine(argv: readonly string[]): FakeQemuCommandLine {
  const chardevFds = new Map<string, number>();
  const monitors: string[] = [];
  const blockdev: Record<string, unknown>[] = [];
  const device: Record<string, unknown>[] = [];
  const object: Record<string, unknown>[] = [];
  const fail: string[] = [];
  let machine: 'pc' | 'none' = 'pc';
  let machineType: string | undefined;
  let machineHelp = false;
  let ramBytes: number | undefined;
  let memoryBackend: string | undefined;
  let paused = false;
  let incoming: string | undefined;
  let ignoreQuit = false;
  let ignoreTerm = false;
  let noGreeting = false;
  let exit: FakeQemuCommandLine['exit'];
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => {
      const value = argv[++i];
      if (value === undefined) throw new FakeQmpUsageError(`${arg} needs a value`);
      return value;
    };
    if (arg.startsWith('--fake-fail=')) fail.push(arg.slice('--fake-fail='.length));
    else if (arg === '--fake-ignore-quit') ignoreQuit = true;
    else if (arg === '--fake-ignore-term') ignoreTerm = true;
    else if (arg === '--fake-no-greeting') noGreeting = true;
    else if (arg.startsWith('--fake-exit=')) {
      const spec = arg.slice('--fake-exit='.length);
      const colon = spec.indexOf(':');
      exit = {
        code: Number(colon < 0 ? spec : spec.slice(0, colon)),
        text: colon < 0 ? '' : spec.slice(colon + 1),
      };
    } else if (arg === '-version' || arg === '--version') version = true;
    else if (arg === '-S') paused = true;
    else if (arg === '-incoming') incoming = next();
    else if (arg === '-blockdev') blockdev.push(json(arg, next()));
    else if (arg === '-device') device.push(json(arg, next()));
    else if (arg === '-object') object.push(json(arg, next()));
    else if (arg === '-machine' || arg === '-M') {
      const kv = keyValues(next());
      const type = kv.get('type') ?? kv.get('');
      if (type === 'help') machineHelp = true;
      else if (type) {
        machine = type === 'none' ? 'none' : 'pc';
        machineType = type === 'none' ? undefined : resolveMachineType(DEFAULT_QEMU_VERSION, type);
      }
      if (kv.has('memory-backend')) memoryBackend = kv.get('memory-backend');
    } else if (arg === '-m') {
      const kv = keyValues(next());
      ramBytes = memoryBytes(kv.get('size') ?? kv.get('') ?? '');
    } else if (arg === '-chardev') {
      const kv = keyValues(next());
      const id = kv.get('id');
      const fd = kv.get('fd');
      if (kv.get('') === 'socket' && id !== undefined && fd !== undefined)
        chardevFds.set(id, Number(fd));
    } else if (arg === '-mon') {
      const kv = keyValues(next());
      if ((kv.get('mode') ?? 'readline') === 'control' && kv.has('chardev'))
        monitors.push(kv.get('chardev')!);
    } else if (arg.startsWith('-') && !arg.startsWith('--') && argv[i + 1] !== undefined) {
      // Every other QEMU option takes one value, except these flags.
      if (
        !['-nodefaults', '-no-user-config', '-no-reboot', '-no-shutdown', '-snapshot'].includes(arg)
      )
        i++;
    }
  }
  const monitorFd = monitors.map((id) => chardevFds.get(id)).find((fd) => fd !== undefined);
  return {
    options: {
      machine,
      ...(paused ? { paused } : {}),
      ...(incoming !== undefined ? { incoming } : {}),
      ...(blockdev.length > 0 ? { blockdev } : {}),
      ...(device.length > 0 ? { device } : {}),
      ...(object.length > 0 ? { object } : {}),
      ...(memoryBackend !== undefined ? { memoryBackend } : {}),
      ...(machineType !== undefined ? { machineType } : {}),
      ...(ramBytes !== undefined ? { ramBytes } : {}),
    },
    monitorFd,
    ignoreQuit,
    ignoreTerm,
    noGreeting,
    fail,
    exit,
    version,
    machineHelp,
  };
}

/**
 * Runs the fake QEMU process until the simulated QEMU exits; resolves with the exit code.
 * (Signals are left to the caller: by default they end the process.)
 */
export async function runFakeQemu(argv: readonly string[], io: FakeQemuIo): Promise<number> {
  let line: FakeQemuCommandLine;
  try {
    line = parseQemuCommandLine(argv);
  } catch (error) {
    io.stderr(`qemu-system-x86_64: ${(error as Error).message}\n`);
    return 1;
  }
  if (line.machineHelp) {
    io.stdout(machineHelp(DEFAULT_QEMU_VERSION));
    return 0;
  }
  if (line.exit) {
    io.stderr(line.exit.text === '' ? '' : `${line.exit.text}\n`);
    return line.exit.code;
  }
  const fake = await createFakeQmp({ ...line.options, storage: 'host' });
  if (line.version) {
    const { qemu, package: pkg } = fake.version;
    io.stdout(
      `QEMU emulator version ${qemu.major}.${qemu.minor}.${qemu.micro} (${pkg})\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n`,
    );
    await fake.close();
    return 0;
  }
  if (line.ignoreTerm) process.on('SIGTERM', () => {});
  if (line.noGreeting) fake.inject({ kind: 'stall-greeting' });
  for (const command of line.fail)
    fake.handle(command, () => {
      throw qmpError('refused by the fake');
    });
  if (line.ignoreQuit) fake.handle('quit', () => ({}));
  if (line.monitorFd !== undefined) {
    const socket = (io.openFd ?? ((fd) => new net.Socket({ fd, readable: true, writable: true })))(
      line.monitorFd,
    );
    fake.accept(socket);
  }
  // QEMU keeps running when its monitor's peer goes away; only an exit ends it.
  const alive = setInterval(() => {}, 60_000);
  const code = await fake.exited;
  clearInterval(alive);
  await fake.close();
  return code;
}
