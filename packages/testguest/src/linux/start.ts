/**
 * `startLinuxGuest`: boots a guest from `buildLinuxGuest` under QEMU (COM1 on the child's
 * stdout, QMP and the agent's virtio-serial port on UNIX sockets in a directory the caller
 * owns), for tests and benchmarks. Spawned with an argument array; `kill()` signals only the
 * pid it spawned.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { LinuxGuestError } from '../errors.js';
import { escapeQemuOptionValue } from '../node.js';
import type { LinuxGuest } from './build.js';
import { AGENT_PORT } from './init.js';
import { JsonLineClient } from './jsonlines.js';

/** A QEMU to run: a name/path, or a description with its own data and module dirs (machine's `QemuBinary` fits). */
export type LinuxGuestQemu =
  | string
  | {
      readonly path: string;
      readonly dataDir?: string | undefined;
      readonly moduleDir?: string | undefined;
    };

export interface StartLinuxGuestOptions {
  readonly guest: Pick<LinuxGuest, 'kernel' | 'initrd' | 'append'>;
  /** A private directory for `qmp.sock` and `qga.sock`. */
  readonly dir: string;
  /** Default `qemu-system-x86_64` on PATH. */
  readonly qemu?: LinuxGuestQemu;
  /** A raw ext4 image attached as virtio-blk (`/dev/vda`, mounted on `/data`). */
  readonly dataDisk?: string;
  /** Default 256. */
  readonly memoryMiB?: number;
  /** Appended after the generated arguments. */
  readonly extraArgs?: readonly string[];
}

export interface LinuxGuestLine {
  readonly text: string;
  /** Milliseconds from spawning QEMU to receiving the line. */
  readonly atMs: number;
}

const STDERR_LIMIT = 16 * 1024;

/** The agent's virtserialport device id: `VSERPORT_CHANGE` events name the port by it. */
export const AGENT_PORT_ID = 'qga-port';

export class LinuxGuestProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly qmpSocket: string;
  readonly agentSocket: string;
  readonly lines: LinuxGuestLine[] = [];
  /** Resolves when QEMU has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly started = performance.now();
  private stderrText = '';
  private partial = '';
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private listeners: (() => void)[] = [];

  /** @internal use `startLinuxGuest` */
  constructor(
    argv: readonly string[],
    env: NodeJS.ProcessEnv,
    sockets: { qmp: string; agent: string },
  ) {
    this.argv = argv;
    this.qmpSocket = sockets.qmp;
    this.agentSocket = sockets.agent;
    const [command = '', ...args] = argv;
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    this.pid = this.child.pid ?? -1;
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
    this.child.once('error', (error) => {
      this.stderrText += `spawn failed: ${error.message}\n`;
    });
    this.child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
      const text = this.partial + chunk;
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      const atMs = this.elapsedMs();
      for (const p of parts) this.lines.push({ text: p.replace(/\r$/, ''), atMs });
      this.notify();
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrText = (this.stderrText + chunk).slice(-STDERR_LIMIT);
    });
  }

  /** Milliseconds since QEMU was spawned. */
  elapsedMs(): number {
    return performance.now() - this.started;
  }

  get stderr(): string {
    return this.stderrText;
  }

  private notify(): void {
    const l = this.listeners;
    this.listeners = [];
    for (const f of l) f();
  }

  private failure(
    reason: 'timeout' | 'exited' | 'agent',
    message: string,
    cause?: unknown,
  ): LinuxGuestError {
    return new LinuxGuestError(
      reason,
      `guest pid ${this.pid}: ${message}`,
      { lastLines: this.lines.slice(-8).map((l) => l.text), stderr: this.stderrText },
      cause === undefined ? undefined : { cause },
    );
  }

  /** The first serial line (from the start) matching `pattern`. */
  async waitForLine(pattern: RegExp, timeoutMs = 120_000): Promise<LinuxGuestLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => pattern.test(l.text));
      if (found) return found;
      if (this.exit) throw this.failure('exited', `QEMU exited before a line matched ${pattern}`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure('timeout', `no line matched ${pattern} in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.listeners.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Waits until qemu-ga answers `guest-ping`: `guest-sync-delimited` with a random id first
   * (QEMU holds it until the agent opens its port; bytes before the 0xFF are stale), then
   * the ping. Resolves with the milliseconds since spawn at which the ping was answered.
   */
  async pingAgent(timeoutMs = 120_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let client: JsonLineClient | undefined;
    try {
      client = await JsonLineClient.connect(this.agentSocket, deadline);
      const id = Math.floor(Math.random() * 2 ** 31);
      client.send({ execute: 'guest-sync-delimited', arguments: { id } });
      await client.next((m) => m.return === id, deadline);
      client.send({ execute: 'guest-ping' });
      const reply = await client.next((m) => 'return' in m || 'error' in m, deadline);
      if (!('return' in reply))
        throw this.failure('agent', `guest-ping answered ${JSON.stringify(reply)}`);
      return this.elapsedMs();
    } catch (error) {
      if (error instanceof LinuxGuestError) throw error;
      if (this.exit) throw this.failure('exited', 'QEMU exited before the agent answered', error);
      throw this.failure(
        'timeout',
        `the agent did not answer guest-ping: ${(error as Error).message}`,
        error,
      );
    } finally {
      client?.close();
    }
  }

  /** Kills QEMU (SIGKILL, its own pid only) and waits for it to exit. */
  async kill(): Promise<void> {
    if (!this.exit && this.child.exitCode === null && this.child.signalCode === null)
      this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** QEMU arguments for booting `guest` (exported for tests and tools that spawn QEMU themselves). */
export function linuxGuestArgs(
  options: Omit<StartLinuxGuestOptions, 'qemu'> & { qemuDataDir?: string },
): string[] {
  const qmp = path.join(options.dir, 'qmp.sock');
  const agent = path.join(options.dir, 'qga.sock');
  return [
    ...(options.qemuDataDir ? ['-L', options.qemuDataDir] : []),
    '-machine',
    'pc',
    '-m',
    String(options.memoryMiB ?? 256),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    options.guest.kernel,
    '-initrd',
    options.guest.initrd,
    '-append',
    options.guest.append,
    '-chardev',
    'stdio,id=com1,signal=off',
    '-serial',
    'chardev:com1',
    '-chardev',
    `socket,id=qmp0,path=${escapeQemuOptionValue(qmp)},server=on,wait=off`,
    '-mon',
    'chardev=qmp0,mode=control',
    '-device',
    'virtio-serial-pci,id=vser0',
    '-chardev',
    `socket,id=qga0,path=${escapeQemuOptionValue(agent)},server=on,wait=off`,
    '-device',
    `virtserialport,chardev=qga0,id=${AGENT_PORT_ID},name=${AGENT_PORT}`,
    ...(options.dataDisk
      ? [
          '-blockdev',
          JSON.stringify({
            driver: 'raw',
            'node-name': 'data0',
            file: { driver: 'file', filename: options.dataDisk },
          }),
          '-device',
          'virtio-blk-pci,drive=data0',
        ]
      : []),
    ...(options.extraArgs ?? []),
  ];
}

/** Spawns QEMU booting the Linux guest; wait with `waitForLine(/READY/)` and `pingAgent()`. */
export function startLinuxGuest(options: StartLinuxGuestOptions): LinuxGuestProcess {
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const binary = typeof qemu === 'string' ? { path: qemu } : qemu;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.QEMU_MODULE_DIR;
  if (binary.moduleDir) env.QEMU_MODULE_DIR = binary.moduleDir;
  const args = linuxGuestArgs({
    ...options,
    ...(binary.dataDir ? { qemuDataDir: binary.dataDir } : {}),
  });
  return new LinuxGuestProcess([binary.path, ...args], env, {
    qmp: path.join(options.dir, 'qmp.sock'),
    agent: path.join(options.dir, 'qga.sock'),
  });
}
