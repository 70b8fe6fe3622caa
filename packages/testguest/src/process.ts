/**
 * Runs the guest under `qemu-system-x86_64` with COM1 on the child's stdio pipes: a small
 * harness for tests, benchmarks and demos. QEMU is spawned with an argument array; `stop()`
 * signals only the pid this object spawned.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { GuestProcessError } from './errors.js';
import { type GuestQemuArgsOptions, guestQemuArgs } from './node.js';
import { parseSerialLine, type SerialLine, SerialLineSplitter } from './serial.js';

/** Options for `startGuest`: those of `guestQemuArgs` (serial is always stdio) plus more. */
export interface StartGuestOptions extends Omit<GuestQemuArgsOptions, 'serial'> {
  /** The QEMU executable. Default `'qemu-system-x86_64'` (looked up on PATH). */
  readonly qemu?: string;
  /** Appended after the generated arguments (e.g. `-qmp`, `-S`). */
  readonly extraArgs?: readonly string[];
}

/** One complete line from the guest's COM1. */
export interface GuestLine {
  /** The line without its CR LF (Latin-1). */
  readonly text: string;
  /** Milliseconds from spawning QEMU to receiving the line's end. */
  readonly atMs: number;
  /** The parsed line, or `undefined` for anything the guest would not print. */
  readonly parsed: SerialLine | undefined;
}

/** How the QEMU process ended. */
export interface GuestExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const STDERR_LIMIT = 16 * 1024;

/** A running guest. Create with `startGuest`. */
export class GuestProcess {
  /** Pid of the spawned QEMU. */
  readonly pid: number;
  /** The full command line, executable first. */
  readonly argv: readonly string[];
  /** Every complete line received so far, in order. */
  readonly lines: GuestLine[] = [];
  /** Resolves when QEMU has exited (never rejects). */
  readonly exited: Promise<GuestExit>;

  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly startedAt: number;
  private readonly splitter = new SerialLineSplitter();
  private readonly waiters = new Set<() => void>();
  private stderrText = '';
  private exit: GuestExit | undefined;

  /** @internal use `startGuest` */
  constructor(command: string, args: readonly string[]) {
    this.argv = [command, ...args];
    this.startedAt = performance.now();
    this.child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
    this.child.on('error', (error) => {
      this.stderrText += `spawn failed: ${error.message}\n`;
      this.exit ??= { code: null, signal: null };
      this.notify();
    });
    // EPIPE on stdin after QEMU exits is reported through `write`'s callback instead.
    this.child.stdin.on('error', () => {});
    this.child.stdout.on('data', (chunk: Buffer) => {
      const atMs = performance.now() - this.startedAt;
      for (const text of this.splitter.push(chunk)) {
        this.lines.push({ text, atMs, parsed: parseSerialLine(text) });
      }
      this.notify();
    });
    this.child.stderr.on('data', (chunk: Buffer) => {
      if (this.stderrText.length < STDERR_LIMIT) this.stderrText += chunk.toString('utf8');
    });
    if (this.child.pid === undefined) {
      // spawn failed synchronously enough that there is no pid; 'error' follows.
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
    }
  }

  /** What QEMU wrote to stderr so far (first 16 KiB). */
  get stderr(): string {
    return this.stderrText;
  }

  /** Milliseconds since QEMU was spawned. */
  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * Resolves with the first line at index `from` or later that satisfies `predicate`.
   * Rejects with `GuestProcessError` on timeout or if QEMU exits first.
   */
  waitForLine(
    predicate: (line: GuestLine) => boolean,
    options: { readonly timeoutMs?: number; readonly from?: number } = {},
  ): Promise<GuestLine> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    let next = options.from ?? 0;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        for (; next < this.lines.length; next++) {
          const line = this.lines[next];
          if (line && predicate(line)) {
            done();
            resolve(line);
            return;
          }
        }
        if (this.exit) {
          done();
          reject(this.failure('exited', `QEMU exited (${describeExit(this.exit)}) first`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(this.failure('timeout', `no matching line within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits until at least `count` counter lines have arrived; returns all counters so far. */
  async waitForCounters(
    count: number,
    options: { readonly timeoutMs?: number } = {},
  ): Promise<number[]> {
    let seen = 0;
    await this.waitForLine((line) => line.parsed?.kind === 'counter' && ++seen >= count, options);
    return this.counters();
  }

  /** Every counter value received so far, in order. */
  counters(): number[] {
    return this.lines.flatMap((line) =>
      line.parsed?.kind === 'counter' ? [line.parsed.value] : [],
    );
  }

  /** Writes bytes to the guest's COM1 (strings are encoded as Latin-1). */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    return new Promise((resolve, reject) => {
      this.child.stdin.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  /**
   * Stops QEMU: sends `signal` (default SIGTERM) to this pid only, then SIGKILL if it has
   * not exited after `graceMs` (default 5 s). Resolves once the process is gone and its
   * output has been read.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<GuestExit> {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    const timer = setTimeout(() => {
      if (!this.exit) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(reason: 'timeout' | 'exited', message: string): GuestProcessError {
    return new GuestProcessError({
      reason,
      message,
      pid: this.pid,
      lastLines: this.lines.slice(-5).map((l) => l.text),
      stderr: this.stderrText.trim(),
      exit: this.exit,
    });
  }
}

function describeExit(exit: GuestExit): string {
  if (exit.code !== null) return `code ${exit.code}`;
  return exit.signal !== null ? `signal ${exit.signal}` : 'it could not be started';
}

/**
 * Boots the guest image under QEMU with COM1 on stdio and returns a handle. The image must
 * exist (see `writeGuestImage` / `createQcow2Guest`).
 */
export function startGuest(options: StartGuestOptions): GuestProcess {
  const args = [...guestQemuArgs({ ...options, serial: 'stdio' }), ...(options.extraArgs ?? [])];
  return new GuestProcess(options.qemu ?? 'qemu-system-x86_64', args);
}
