/**
 * Runs one contract scenario against a peer — a real QEMU (a `QemuBinary` of the shared test
 * support, so the lookup, skip rules and cleanup are those of every real-QEMU test) or the fake
 * imitating that binary's version — at the raw wire level: exact bytes go out, raw lines come
 * back, and each step's lines are normalised (timestamps, the peer's private directory, names
 * QEMU invents) into a transcript. A scenario is written once as data; the test compares the
 * two transcripts. The binary is a parameter, so the same scenarios run per QEMU version.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import {
  createFakeQmp,
  createFakeStorageDaemon,
  FAKE_QEMU_VERSIONS,
  type FakeQemuVersion,
  type FakeQmp,
  type FakeQmpOptions,
  openDaemonActions,
  parseStorageDaemonCommandLine,
} from '@qmpkit/fake-qmp';
import { resolveStorageDaemon, storageDaemonEnv } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import {
  killQemu,
  privateTempDir,
  type QemuBinary,
  qemuSkipReason,
  REPO_CACHE_DIR,
  spawnQemu,
  trackQemu,
} from '@qmpkit/testguest/test-support';
import { InheritedFds } from '@qmpkit/transport/fd';

/** The version of QEMU `binary` as the fake names the versions it imitates (`7.2`). */
export function fakeVersionOf(binary: QemuBinary): FakeQemuVersion | undefined {
  if (binary.version === undefined) return undefined;
  const version = `${binary.version.major}.${binary.version.minor}`;
  return FAKE_QEMU_VERSIONS.find((v) => v === version);
}

/**
 * Why the contract scenarios of `binary` cannot run here, or `undefined` when they can: the
 * shared skip rule (QEMU missing, never a reason with `CI=true`), or — outside CI only — a
 * binary whose version the fake does not imitate (in CI that fails in `runScenario`).
 */
export function contractSkipReason(binary: QemuBinary): string | undefined {
  const missing = qemuSkipReason(binary);
  if (missing !== undefined || binary.missing !== undefined) return missing;
  if (fakeVersionOf(binary) === undefined && process.env.CI !== 'true')
    return `the fake imitates QEMU ${FAKE_QEMU_VERSIONS.join(', ')}, not ${binary.description}`;
  return undefined;
}

/** A contract run cannot start (e.g. the fake does not imitate the binary's version). */
export class ContractSetupError extends Error {
  override readonly name = 'ContractSetupError' as const;
}

/** The contract of a QEMU program: the system emulator (`SystemSetup`) or the storage daemon. */
export type Setup = SystemSetup | DaemonSetup;

/**
 * The binary's `qemu-storage-daemon` (`QemuBinary.storageDaemon`: the system's for 7.2, the
 * cache's qemu-utils for 10.0) with QMP on an inherited socketpair (`--chardev socket,fd=N`
 * + `--monitor`), against the fake's storage-daemon personality of that version.
 */
export interface DaemonSetup {
  readonly program: 'storage-daemon';
  /**
   * More daemon arguments (`--blockdev`, `--object`, `--nbd-server`, `--export`, JSON or
   * key=value). The fake reads the same arguments with its own command-line reader
   * (`parseStorageDaemonCommandLine` + `openDaemonActions`), so the scenario checks that too.
   */
  readonly daemonArgs?: (dir: string) => string[];
  /** Prepares files in the peer's private directory (with `binary`'s `qemu-img`) before it starts. */
  readonly prepare?: (dir: string, binary: QemuBinary) => void | Promise<void>;
}

export interface SystemSetup {
  readonly program?: 'qemu-system';
  /** `-machine none` or `-machine pc -m 16` (-nodefaults, -accel tcg in both). */
  readonly machine: 'none' | 'pc';
  /** `-S`. */
  readonly paused?: boolean;
  /**
   * Boot @qmpkit/testguest (`-machine pc` only): its raw image in the peer's directory as
   * `disk0` on an anonymous `ide-hd` (`/machine/peripheral-anon/device[0]`), COM1 on
   * `-serial null`. The guest ignores ACPI power buttons but acknowledges PCI ejects; the
   * fake gets the same node and device and its default timing (see FakeTiming).
   */
  readonly guest?: boolean;
  /** `-incoming defer`. */
  readonly incoming?: 'defer';
  /** Extra QEMU arguments (the fake gets the equivalent through `fake`). */
  readonly qemuArgs?: (dir: string) => string[];
  /** Options for the fake that mirror `qemuArgs`. */
  readonly fake?: (dir: string) => Partial<FakeQmpOptions>;
  /** Prepares files in the peer's private directory (with `binary`'s `qemu-img`) before it starts. */
  readonly prepare?: (dir: string, binary: QemuBinary) => void | Promise<void>;
  /**
   * A second peer of the same kind (a second QEMU, or a second fake), started after the first
   * in the same private directory — a migration target. Steps with `peer: 'target'` talk to it;
   * their transcript labels start with `target: `.
   */
  readonly target?: Omit<SystemSetup, 'target' | 'prepare'>;
}

export interface StepContext {
  /** The peer's private directory (`$DIR` in transcripts). */
  readonly dir: string;
  readonly kind: 'qemu' | 'fake';
  /** The QEMU of this run (for the fake: the one it is compared with). */
  readonly binary: QemuBinary;
  /** State a scenario keeps between its steps (per peer). */
  readonly state: Map<string, unknown>;
  /**
   * The raw lines a peer sent so far (not normalised), e.g. to read a port the target chose;
   * a `send` replaces `$PORT` with `state.get('port')`.
   */
  readonly lines: (peer?: 'target') => readonly string[];
}

export type Step =
  | {
      /** One command line (a newline is appended); `$DIR` is replaced by the peer's directory. */
      readonly send: string;
      /** The peer the line goes to (default the first; 'target': `setup.target`). */
      readonly peer?: 'target';
      /**
       * The reply's place among this step's events varies in QEMU (a thread of its own, e.g.
       * the migration thread, emits them while the monitor answers): the transcript moves
       * reply lines after the events, whose order among themselves still counts.
       */
      readonly replyLast?: boolean;
      /** Replies to wait for (default 1). */
      readonly replies?: number;
      /** Substrings that must all appear in this step's lines before it ends. */
      readonly until?: readonly string[];
      /** Extra milliseconds to collect lines after the step's condition holds. */
      readonly settle?: number;
      /**
       * Compare this step's lines as a set (sorted): QEMU races its reply against events of
       * work that waits for I/O threads (a block job on image files), so their order varies.
       */
      readonly unordered?: boolean;
      /**
       * Sends the command again until its reply contains this substring, and records only the
       * last exchange: for a state QEMU reaches on its own, after the previous step's reply,
       * with no event to wait for (e.g. `migrate` without the events capability fails its
       * connect in a thread of its own). Any line besides the reply fails the step.
       */
      readonly repeatUntil?: string;
    }
  | {
      /** Exact bytes (nothing appended). */
      readonly raw: string;
      readonly peer?: 'target';
      readonly replies?: number;
      readonly until?: readonly string[];
      readonly settle?: number;
    }
  | { readonly run: (ctx: StepContext) => Promise<void> | void; readonly label?: string }
  | {
      /**
       * Sends nothing: waits until the lines not yet in the transcript contain these substrings
       * in order (events that arrived while the other peer was talked to), then takes them.
       */
      readonly await: readonly string[];
      readonly peer?: 'target';
    }
  | { readonly expectClose: true; readonly peer?: 'target' };

export interface Scenario {
  readonly name: string;
  readonly setup: Setup;
  /** Start reading without negotiating (default: the runner sends nothing before `steps`). */
  readonly steps: readonly Step[];
  /** Extra normalisations for this scenario (applied after the defaults). */
  readonly normalize?: readonly (readonly [RegExp, string])[];
  /**
   * Lines (after normalising) that real QEMU prints in some runs and not in others because of a
   * race inside QEMU itself; they are dropped from both transcripts. Each use says which race.
   */
  readonly racyLines?: readonly RegExp[];
  /** Per-step timeout in ms (default 5000). */
  readonly timeout?: number;
}

export interface TranscriptEntry {
  readonly step: string;
  readonly lines: readonly string[];
}

interface Wire {
  write(text: string): void;
  readonly lines: string[];
  closed: boolean;
  waitForMore(ms: number): Promise<void>;
  destroy(): void;
}

function wireOver(socket: net.Socket): Wire {
  let partial = '';
  let wake: (() => void) | undefined;
  const wire: Wire = {
    lines: [],
    closed: false,
    write: (text) => {
      if (!socket.destroyed) socket.write(text);
    },
    waitForMore: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          resolve();
        };
      }),
    destroy: () => socket.destroy(),
  };
  socket.on('data', (d: Buffer) => {
    const parts = (partial + d.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    // QEMU ends lines with \r\n; keep the \r visible as ⏎ so a missing one shows in diffs.
    for (const p of parts) wire.lines.push(p.endsWith('\r') ? `${p.slice(0, -1)}⏎` : p);
    wake?.();
  });
  const closed = () => {
    if (partial !== '') wire.lines.push(`${partial}<no newline>`);
    partial = '';
    wire.closed = true;
    wake?.();
  };
  socket.on('close', closed);
  socket.on('error', () => {});
  return wire;
}

interface Peer {
  readonly wire: Wire;
  readonly dir: string;
  close(): Promise<void>;
}

const BASE_ARGS = ['-nodefaults', '-display', 'none', '-accel', 'tcg'];

const GUEST_IMAGE = 'guest.raw';
const guestBlockdev = (dir: string): Record<string, unknown>[] => [
  { driver: 'file', filename: path.join(dir, GUEST_IMAGE), 'node-name': 'disk0-file' },
  { driver: 'raw', file: 'disk0-file', 'node-name': 'disk0' },
];
const GUEST_DEVICE = { driver: 'ide-hd', drive: 'disk0', bootindex: 1 };

function guestQemuArgs(dir: string): string[] {
  return [
    ...guestBlockdev(dir).flatMap((b) => ['-blockdev', JSON.stringify(b)]),
    '-device',
    'ide-hd,drive=disk0,bootindex=1',
    '-serial',
    'null',
  ];
}

async function startDaemon(setup: DaemonSetup, dir: string, binary: QemuBinary): Promise<Peer> {
  const daemon = await resolveStorageDaemon(binary.storageDaemon, { cacheDir: REPO_CACHE_DIR });
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const monitor = fds.socketpair();
  const args = [
    '--chardev',
    `socket,id=qmp,fd=${monitor.fd}`,
    '--monitor',
    'chardev=qmp',
    ...(setup.daemonArgs?.(dir) ?? []),
  ];
  // Tracked like a QEMU: the shared suite cleanup kills it if `close` never runs.
  const child = trackQemu(
    spawn(daemon.path, args, { stdio: fds.stdio, cwd: dir, env: storageDaemonEnv(daemon) }),
  );
  fds.closeParentCopies();
  child.stdout?.resume();
  child.stderr?.resume();
  const wire = wireOver(monitor.socket(child));
  return {
    wire,
    dir,
    close: async () => {
      wire.destroy();
      await killQemu(child);
    },
  };
}

async function startQemu(setup: SystemSetup, dir: string, binary: QemuBinary): Promise<Peer> {
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const monitor = fds.socketpair();
  const args = [
    ...BASE_ARGS,
    '-machine',
    setup.machine,
    ...(setup.machine === 'pc' ? ['-m', '16'] : []),
    ...(setup.paused ? ['-S'] : []),
    ...(setup.incoming ? ['-incoming', setup.incoming] : []),
    ...(setup.guest ? guestQemuArgs(dir) : []),
    ...(setup.qemuArgs?.(dir) ?? []),
    ...monitor.monitorArgs(),
  ];
  // Tracked by the shared test support: its suite cleanup and exit hook kill it if `close`
  // never runs (a test timeout tears the worker down).
  const child = spawnQemu(args, { binary, stdio: fds.stdio, cwd: dir });
  child.stdout?.resume();
  child.stderr?.resume();
  const wire = wireOver(monitor.socket(child));
  return {
    wire,
    dir,
    close: async () => {
      wire.destroy();
      await killQemu(child);
    },
  };
}

async function startFake(
  setup: Setup,
  dir: string,
  binary: QemuBinary,
  socketName = 'qmp.sock',
): Promise<Peer> {
  const qemuVersion = fakeVersionOf(binary);
  if (qemuVersion === undefined)
    throw new ContractSetupError(
      `the fake imitates QEMU ${FAKE_QEMU_VERSIONS.join(', ')}, not ${binary.description}`,
    );
  const socketPath = path.join(dir, socketName);
  const fake: FakeQmp =
    setup.program === 'storage-daemon'
      ? await startDaemonFake(setup, dir, qemuVersion, socketPath)
      : await startSystemFake(setup, dir, qemuVersion, socketPath);
  const socket = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const wire = wireOver(socket);
  return {
    wire,
    dir,
    close: async () => {
      wire.destroy();
      await fake.close();
    },
  };
}

async function startDaemonFake(
  setup: DaemonSetup,
  dir: string,
  qemuVersion: FakeQemuVersion,
  socketPath: string,
): Promise<FakeQmp> {
  const line = parseStorageDaemonCommandLine([
    ...(setup.daemonArgs?.(dir) ?? []),
    `--fake-version=${qemuVersion}`,
  ]);
  const fake = await createFakeStorageDaemon({ qemuVersion, listen: { unix: socketPath } });
  try {
    openDaemonActions(fake, line.actions);
  } catch (error) {
    await fake.close();
    throw error;
  }
  return fake;
}

async function startSystemFake(
  setup: SystemSetup,
  dir: string,
  qemuVersion: FakeQemuVersion,
  socketPath: string,
): Promise<FakeQmp> {
  const extra = setup.fake?.(dir) ?? {};
  return createFakeQmp({
    qemuVersion,
    machine: setup.machine,
    ...(setup.paused ? { paused: true } : {}),
    ...(setup.incoming ? { incoming: setup.incoming } : {}),
    // The fake's default timing is the tiny guest's (PCI ejects acknowledged, powerdown
    // ignored, SeaBIOS's reset after system_reset); -machine none has no guest to disagree.
    ...extra,
    ...(setup.guest
      ? {
          blockdev: [...guestBlockdev(dir), ...(extra.blockdev ?? [])],
          device: [GUEST_DEVICE, ...(extra.device ?? [])],
        }
      : {}),
    listen: { unix: socketPath },
  });
}

const DEFAULT_NORMALIZE: readonly (readonly [RegExp, string])[] = [
  [
    /"timestamp": \{"seconds": -?\d+, "microseconds": -?\d+\}/g,
    '"timestamp": {"seconds": S, "microseconds": U}',
  ],
  [/#block\d+/g, '#blockN'],
];

function normalizer(scenario: Scenario, dir: string): (line: string) => string {
  const rules = [...DEFAULT_NORMALIZE, ...(scenario.normalize ?? [])];
  return (line) => {
    let out = line.split(dir).join('$DIR');
    for (const [re, to] of rules) out = out.replace(re, to);
    return out;
  };
}

function countReplies(lines: readonly string[]): number {
  return lines.filter(
    (l) => l.startsWith('{"return"') || l.startsWith('{"error"') || l.startsWith('{"id"'),
  ).length;
}

/**
 * Runs a scenario against one peer and returns its normalised transcript: `binary` itself
 * (`qemu`), or the fake imitating `binary`'s version (`fake`; `binary`'s `qemu-img` still
 * prepares its images and a real source of that version still makes incoming streams).
 */
export async function runScenario(
  scenario: Scenario,
  kind: 'qemu' | 'fake',
  binary: QemuBinary,
): Promise<TranscriptEntry[]> {
  const tmp = privateTempDir(`qmpkit-contract-${kind}-`);
  const dir = tmp.dir;
  const state = new Map<string, unknown>();
  const wires: { first?: Wire; target?: Wire } = {};
  const ctx: StepContext = {
    dir,
    kind,
    binary,
    state,
    lines: (peer) => (peer === 'target' ? wires.target : wires.first)?.lines ?? [],
  };
  try {
    return await converse(scenario, ctx, wires);
  } finally {
    tmp.remove();
  }
}

async function converse(
  scenario: Scenario,
  ctx: StepContext,
  wires: { first?: Wire; target?: Wire },
): Promise<TranscriptEntry[]> {
  const { dir, kind, binary } = ctx;
  const { setup } = scenario;
  const system = setup.program === 'storage-daemon' ? undefined : setup;
  if (system?.guest) await writeGuestImage(path.join(dir, GUEST_IMAGE), { intervalMs: 10 });
  await setup.prepare?.(dir, binary);
  const first =
    kind === 'fake'
      ? await startFake(setup, dir, binary)
      : setup.program === 'storage-daemon'
        ? await startDaemon(setup, dir, binary)
        : await startQemu(setup, dir, binary);
  const peers: Peer[] = [first];
  wires.first = first.wire;
  const normalize = normalizer(scenario, dir);
  const timeout = scenario.timeout ?? 5000;
  const transcript: TranscriptEntry[] = [];
  const consumed = new Map<Wire, number>();
  const isReply = (l: string) =>
    l.startsWith('{"return"') || l.startsWith('{"error"') || l.startsWith('{"id"');
  const take = (wire: Wire, label: string, replyLast = false) => {
    const from = consumed.get(wire) ?? 0;
    let lines = wire.lines
      .slice(from)
      .map(normalize)
      .filter((l) => !scenario.racyLines?.some((re) => re.test(l)));
    if (replyLast) lines = [...lines.filter((l) => !isReply(l)), ...lines.filter(isReply)];
    consumed.set(wire, wire.lines.length);
    transcript.push({ step: label, lines });
  };
  const greeting = async (wire: Wire, label: string) => {
    const deadline = Date.now() + timeout;
    while (wire.lines.length === 0 && !wire.closed && Date.now() < deadline)
      await wire.waitForMore(100);
    take(wire, label);
  };
  /** Waits until `lines()` has every substring of `until` in order (or the wire closed / timed out). */
  const waitFor = async (wire: Wire, from: number, until: readonly string[], replies: number) => {
    const end = Date.now() + timeout;
    for (;;) {
      const lines = wire.lines.slice(from);
      let pos = 0;
      const allSeen = until.every((u) => {
        const i = lines.findIndex((l, k) => k >= pos && l.includes(u));
        if (i < 0) return false;
        pos = i + 1;
        return true;
      });
      if (countReplies(lines) >= replies && allSeen) return;
      if (wire.closed || Date.now() > end) return;
      await wire.waitForMore(Math.max(1, end - Date.now()));
    }
  };
  try {
    await greeting(first.wire, 'greeting');
    let target: Peer | undefined;
    const targetSetup = system?.target;
    if (targetSetup) {
      target =
        kind === 'qemu'
          ? await startQemu(targetSetup, dir, binary)
          : await startFake(targetSetup, dir, binary, 'qmp-target.sock');
      peers.push(target);
      wires.target = target.wire;
      await greeting(target.wire, 'target: greeting');
    }
    const wireOf = (step: { readonly peer?: 'target' }): [Wire, string] => {
      if (step.peer !== 'target') return [first.wire, ''];
      if (!target) throw new ContractSetupError("a step names peer 'target' but setup has none");
      return [target.wire, 'target: '];
    };
    for (const step of scenario.steps) {
      if ('run' in step) {
        await step.run(ctx);
        continue;
      }
      const [wire, prefix] = wireOf(step);
      if ('await' in step) {
        await waitFor(wire, consumed.get(wire) ?? 0, step.await, 0);
        take(wire, `${prefix}<await ${step.await.join(', ')}>`);
        continue;
      }
      if ('expectClose' in step) {
        const end = Date.now() + timeout;
        while (!wire.closed && Date.now() < end) await wire.waitForMore(100);
        take(wire, `${prefix}<close>`);
        transcript.push({ step: `${prefix}<closed>`, lines: [String(wire.closed)] });
        continue;
      }
      const text =
        'send' in step
          ? `${step.send
              .split('$DIR')
              .join(dir)
              .split('$PORT')
              .join(String(ctx.state.get('port')))}\n`
          : step.raw.split('$DIR').join(dir);
      const label = 'send' in step ? step.send : `raw ${JSON.stringify(step.raw)}`;
      let start = wire.lines.length;
      wire.write(text);
      await waitFor(wire, start, step.until ?? [], step.replies ?? ('send' in step ? 1 : 0));
      if ('send' in step && step.repeatUntil !== undefined) {
        const wanted = step.repeatUntil;
        const end = Date.now() + timeout;
        for (;;) {
          const got = wire.lines.slice(start);
          if (got.some((l) => !isReply(l)))
            throw new ContractSetupError(
              `repeatUntil step ${label} got more than its reply: ${got.join(' | ')}`,
            );
          if (got.some((l) => l.includes(wanted)) || wire.closed || Date.now() > end) break;
          // Forget this exchange: the transcript shows one send and its last reply.
          wire.lines.splice(start, got.length);
          // Pacing only (not a condition): do not flood a busy QEMU's monitor.
          await new Promise((r) => setTimeout(r, 20));
          start = wire.lines.length;
          wire.write(text);
          await waitFor(wire, start, [], 1);
        }
      }
      if (step.settle) await new Promise((r) => setTimeout(r, step.settle));
      take(wire, `${prefix}${label}`, 'send' in step && step.replyLast === true);
      const last = transcript.at(-1);
      if ('unordered' in step && step.unordered && last)
        transcript[transcript.length - 1] = { ...last, lines: [...last.lines].sort() };
    }
    // Anything that arrived late.
    await new Promise((r) => setTimeout(r, 50));
    for (const [i, peer] of peers.entries())
      if (peer.wire.lines.length > (consumed.get(peer.wire) ?? 0))
        take(peer.wire, i === 0 ? '<late>' : 'target: <late>');
  } finally {
    for (const peer of peers.reverse()) await peer.close();
  }
  return transcript;
}
