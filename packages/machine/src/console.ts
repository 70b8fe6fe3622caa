/**
 * A guest console (serial port, virtio console) whose chardev is a socketpair inherited by
 * QEMU: Node reads and writes it directly. What the guest printed and nobody consumed yet is
 * the console's unread buffer, which belongs to the machine's state (a snapshot restores it).
 */
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { ConsoleClosedError, ConsoleTimeoutError } from './errors.js';

export type ConsoleEncoding = 'utf8' | 'latin1';

/** A console as a launch option: a chardev id, or the id with its encoding. */
export type ConsoleSpec =
  | string
  | { readonly chardev: string; readonly encoding?: ConsoleEncoding | undefined };

/** The unread buffer of one console, as `consoleState()` returns and `restoreConsoleState()` takes. */
export interface ConsoleState {
  readonly chardev: string;
  readonly unread: string;
}

export interface ExpectOptions {
  /** Milliseconds to wait for a match (default 30 000). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/** What `expect` found. The buffer is consumed up to the end of `match`. */
export interface ConsoleMatch {
  /** The matched text. */
  readonly match: string;
  /** Unread text before the match (consumed too). */
  readonly before: string;
  /** Capture groups of a RegExp pattern (`[]` for a string). */
  readonly groups: readonly (string | undefined)[];
  /** Named capture groups of a RegExp pattern. */
  readonly named: Readonly<Record<string, string | undefined>>;
}

interface Waiter {
  check(): boolean;
  fail(error: Error): void;
}

function describePattern(pattern: string | RegExp): string {
  return typeof pattern === 'string' ? JSON.stringify(pattern) : String(pattern);
}

/** A console of a machine. The same object stays valid across restarts. */
export class Console {
  private buffer = '';
  private decoder: StringDecoder;
  private socket: Socket | undefined;
  private waiters: Waiter[] = [];
  private isClosed = true;
  /** Characters dropped from the front because the unread buffer was full. */
  dropped = 0;

  /** @internal Created by the machine. */
  constructor(
    /** The chardev id. */
    readonly chardev: string,
    readonly encoding: ConsoleEncoding,
    /** Most unread characters kept; older ones are dropped (counted in `dropped`). */
    readonly capacity: number,
  ) {
    this.decoder = new StringDecoder(encoding);
  }

  /** @internal Connects the console to the parent end of a new QEMU's socketpair. */
  attach(socket: Socket): void {
    this.socket = socket;
    this.isClosed = false;
    this.decoder = new StringDecoder(this.encoding);
    socket.on('data', (chunk: Buffer) => this.append(this.decoder.write(chunk)));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.append(this.decoder.end());
      this.socket = undefined;
      this.isClosed = true;
      const error = (pattern?: string) => new ConsoleClosedError(this.chardev, pattern);
      for (const w of this.waiters.splice(0)) w.fail(error());
    });
  }

  /** @internal Detaches without waiting for QEMU (used when a machine is torn down). */
  detach(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.isClosed = true;
    socket?.destroy();
    for (const w of this.waiters.splice(0)) w.fail(new ConsoleClosedError(this.chardev));
  }

  /** True when no QEMU is connected (exited, stopped, between restarts). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Characters received and not consumed yet. */
  get unreadLength(): number {
    return this.buffer.length;
  }

  private append(text: string): void {
    if (text === '') return;
    this.buffer += text;
    if (this.buffer.length > this.capacity) {
      const excess = this.buffer.length - this.capacity;
      this.buffer = this.buffer.slice(excess);
      this.dropped += excess;
    }
    this.wake();
  }

  private wake(): void {
    // Waiters run in order; each may consume, so re-check from the start after a match.
    for (const w of [...this.waiters]) {
      if (!this.waiters.includes(w)) continue;
      if (!w.check()) break;
    }
  }

  /** Everything unread, consumed. */
  read(): string {
    const text = this.buffer;
    this.buffer = '';
    return text;
  }

  /** Everything unread, left in place. */
  peek(): string {
    return this.buffer;
  }

  /**
   * Waits until the unread text matches `pattern` (a substring or a RegExp; `g`/`y` flags
   * are ignored), consumes it up to the end of the match and returns the match. Several
   * calls wait in call order. Rejects with `ConsoleTimeoutError` or, when QEMU goes away
   * first, `ConsoleClosedError`.
   */
  expect(pattern: string | RegExp, options: ExpectOptions = {}): Promise<ConsoleMatch> {
    const timeout = options.timeout ?? 30_000;
    const regex =
      typeof pattern === 'string'
        ? undefined
        : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    const find = (): ConsoleMatch | undefined => {
      if (regex === undefined) {
        const needle = pattern as string;
        const at = this.buffer.indexOf(needle);
        if (at < 0) return undefined;
        const before = this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + needle.length);
        return { match: needle, before, groups: [], named: {} };
      }
      const m = regex.exec(this.buffer);
      if (m === null) return undefined;
      const before = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      return { match: m[0], before, groups: m.slice(1), named: { ...(m.groups ?? {}) } };
    };
    return new Promise<ConsoleMatch>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      const waiter: Waiter = {
        check: () => {
          const found = find();
          if (found === undefined) return false;
          cleanup();
          resolve(found);
          return true;
        },
        fail: (error) => {
          cleanup();
          reject(
            error instanceof ConsoleClosedError
              ? new ConsoleClosedError(this.chardev, describePattern(pattern))
              : error,
          );
        },
      };
      const onAbort = () => waiter.fail(options.signal?.reason as Error);
      if (options.signal?.aborted) {
        reject(options.signal.reason);
        return;
      }
      // Only the first waiter may look at the buffer now; later ones wait their turn.
      if (this.waiters.length === 0 && waiter.check()) return;
      if (this.isClosed) {
        reject(new ConsoleClosedError(this.chardev, describePattern(pattern)));
        return;
      }
      this.waiters.push(waiter);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(
        () =>
          waiter.fail(
            new ConsoleTimeoutError(this.chardev, describePattern(pattern), timeout, this.buffer),
          ),
        timeout,
      );
    });
  }

  /** Sends `data` to the guest (strings in the console's encoding). */
  write(data: string | Uint8Array): Promise<void> {
    const socket = this.socket;
    if (socket === undefined || this.isClosed)
      return Promise.reject(new ConsoleClosedError(this.chardev));
    const bytes = typeof data === 'string' ? Buffer.from(data, this.encoding) : data;
    return new Promise((resolve, reject) => {
      socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** @internal */
  state(): ConsoleState {
    return { chardev: this.chardev, unread: this.buffer };
  }

  /** @internal Replaces the unread buffer (waiters then look at the restored text). */
  restore(unread: string): void {
    this.buffer = unread;
    this.wake();
  }
}
