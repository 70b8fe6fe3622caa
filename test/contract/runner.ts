/**
 * Runs one contract scenario against a peer — a real `qemu-system-x86_64` (7.2 or 10.0) or
 * the fake imitating the same version —
 * at the raw wire level: exact bytes go out, raw lines come back, and each step's lines are
 * normalised (timestamps, the peer's private directory, names QEMU invents) into a
 * transcript. A scenario is written once as data; the test compares the two transcripts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createFakeQmp,
  FAKE_QEMU_VERSIONS,
  type FakeQemuVersion,
  type FakeQmp,
  type FakeQmpOptions,
} from '@qmpkit/fake-qmp';
import { writeGuestImage } from '@qmpkit/testguest';
import { QEMU, type QemuBinary } from '@qmpkit/testguest/test-support';
import { InheritedFds } from '@qmpkit/transport/fd';

/** The fake version that imitates `binary` (its `major.minor`), or undefined when none does. */
export function fakeVersionFor(binary: QemuBinary): FakeQemuVersion | undefined {
  const v = binary.version;
  const name = v ? `${v.major}.${v.minor}` : '';
  return FAKE_QEMU_VERSIONS.find((known) => known === name);
}

/** Why real-QEMU contract tests cannot run against `binary` here, or undefined when they can. */
export function qemuMissing(binary: QemuBinary, release: string): string | undefined {
  if (binary.missing) return binary.missing;
  const v = binary.version;
  if (v === undefined || `${v.major}.${v.minor}` !== release)
    return `${binary.system} is not QEMU ${release} (${binary.description})`;
  if (
    spawnSync(binary.system, ['--version'], { env: { ...process.env, ...binary.env } }).status !== 0
  )
    return `${binary.system} not runnable`;
  return undefined;
}

export interface Setup {
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
  /** Prepares files in the peer's private directory before it starts. */
  readonly prepare?: (dir: string) => void | Promise<void>;
}

export interface StepContext {
  /** The peer's private directory (`$DIR` in transcripts). */
  readonly dir: string;
  readonly kind: 'qemu' | 'fake';
  /** State a scenario keeps between its steps (per peer). */
  readonly state: Map<string, unknown>;
}

export type Step =
  | {
      /** One command line (a newline is appended); `$DIR` is replaced by the peer's directory. */
      readonly send: string;
      /** Replies to wait for (default 1). */
      readonly replies?: number;
      /** Substrings that must all appear in this step's lines before it ends. */
      readonly until?: readonly string[];
      /** Extra milliseconds to collect lines after the step's condition holds. */
      readonly settle?: number;
    }
  | {
      /** Exact bytes (nothing appended). */
      readonly raw: string;
      readonly replies?: number;
      readonly until?: readonly string[];
      readonly settle?: number;
    }
  | { readonly run: (ctx: StepContext) => Promise<void> | void; readonly label?: string }
  | { readonly expectClose: true };

export interface Scenario {
  readonly name: string;
  readonly setup: Setup;
  /** Start reading without negotiating (default: the runner sends nothing before `steps`). */
  readonly steps: readonly Step[];
  /** Extra normalisations for this scenario (applied after the defaults). */
  readonly normalize?: readonly (readonly [RegExp, string])[];
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

async function startQemu(setup: Setup, dir: string, binary: QemuBinary): Promise<Peer> {
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const monitor = fds.socketpair();
  const args = [
    ...binary.baseArgs,
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
  const child: ChildProcess = spawn(binary.system, args, {
    stdio: fds.stdio,
    cwd: dir,
    env: { ...process.env, ...binary.env },
  });
  child.stdout?.resume();
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const wire = wireOver(monitor.socket(child));
  return {
    wire,
    dir,
    close: async () => {
      wire.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise<void>((resolve) => child.once('exit', () => resolve()));
      }
      void stderr;
    },
  };
}

async function startFake(setup: Setup, dir: string, version: FakeQemuVersion): Promise<Peer> {
  const socketPath = path.join(dir, 'qmp.sock');
  const extra = setup.fake?.(dir) ?? {};
  const fake: FakeQmp = await createFakeQmp({
    qemuVersion: version,
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
 * Runs a scenario against one peer and returns its normalised transcript: the real `binary`,
 * or the fake imitating `binary`'s version.
 */
export async function runScenario(
  scenario: Scenario,
  kind: 'qemu' | 'fake',
  binary: QemuBinary = QEMU,
): Promise<TranscriptEntry[]> {
  const fakeVersion = fakeVersionFor(binary);
  if (kind === 'fake' && fakeVersion === undefined)
    throw new Error(`the fake imitates no QEMU ${binary.description}`);
  const dir = mkdtempSync(path.join(tmpdir(), `qmpkit-contract-${kind}-`));
  const state = new Map<string, unknown>();
  const ctx: StepContext = { dir, kind, state };
  if (scenario.setup.guest) await writeGuestImage(path.join(dir, GUEST_IMAGE), { intervalMs: 10 });
  await scenario.setup.prepare?.(dir);
  const peer =
    kind === 'qemu'
      ? await startQemu(scenario.setup, dir, binary)
      : await startFake(scenario.setup, dir, fakeVersion ?? '7.2');
  const normalize = normalizer(scenario, dir);
  const timeout = scenario.timeout ?? 5000;
  const transcript: TranscriptEntry[] = [];
  const wire = peer.wire;
  let consumed = 0;
  const take = (label: string) => {
    const lines = wire.lines.slice(consumed).map(normalize);
    consumed = wire.lines.length;
    transcript.push({ step: label, lines });
  };
  try {
    // The greeting.
    const deadline = Date.now() + timeout;
    while (wire.lines.length === 0 && !wire.closed && Date.now() < deadline)
      await wire.waitForMore(100);
    take('greeting');
    for (const step of scenario.steps) {
      if ('run' in step) {
        await step.run(ctx);
        continue;
      }
      if ('expectClose' in step) {
        const end = Date.now() + timeout;
        while (!wire.closed && Date.now() < end) await wire.waitForMore(100);
        take('<close>');
        transcript.push({ step: '<closed>', lines: [String(wire.closed)] });
        continue;
      }
      const text =
        'send' in step
          ? `${step.send.split('$DIR').join(dir)}\n`
          : step.raw.split('$DIR').join(dir);
      const label = 'send' in step ? step.send : `raw ${JSON.stringify(step.raw)}`;
      const start = wire.lines.length;
      wire.write(text);
      const wantReplies = step.replies ?? ('send' in step ? 1 : 0);
      const until = step.until ?? [];
      const end = Date.now() + timeout;
      for (;;) {
        const lines = wire.lines.slice(start);
        let pos = 0;
        const allSeen = until.every((u) => {
          const i = lines.findIndex((l, k) => k >= pos && l.includes(u));
          if (i < 0) return false;
          pos = i + 1;
          return true;
        });
        if (countReplies(lines) >= wantReplies && allSeen) break;
        if (wire.closed || Date.now() > end) break;
        await wire.waitForMore(Math.max(1, end - Date.now()));
      }
      if (step.settle) await new Promise((r) => setTimeout(r, step.settle));
      take(label);
    }
    // Anything that arrived late.
    await new Promise((r) => setTimeout(r, 50));
    if (wire.lines.length > consumed) take('<late>');
  } finally {
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return transcript;
}
