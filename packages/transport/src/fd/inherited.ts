import type { ChildProcess, StdioNull, StdioPipe } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type net from 'node:net';
import type { Stream } from 'node:stream';
import type { QmpAddress } from '../transports/address.js';

/** One entry of `spawn`'s `stdio` array. */
export type StdioEntry = StdioPipe | StdioNull | 'inherit' | number | Stream;

const ID_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;

function checkId(id: string): string {
  if (!ID_RE.test(id)) throw new TypeError(`QEMU id '${id}' must match ${ID_RE}`);
  return id;
}

/** Doubles commas, the escape QEMU's option parser understands. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** An fd the child inherits at a fixed number. */
export class InheritedFd {
  constructor(
    /** The fd number inside the child. */
    readonly fd: number,
  ) {}

  /** `fd:N`, e.g. for `-incoming fd:N` or `migrate-incoming uri=fd:N`. */
  get uri(): string {
    return `fd:${this.fd}`;
  }

  /** `-add-fd fd=N,set=S[,opaque=…]`; QEMU then knows it as `/dev/fdset/S`. */
  addFdArgs(set: number, opaque?: string): string[] {
    if (!Number.isInteger(set) || set < 0) throw new TypeError('fd set must be an integer ≥ 0');
    const opaquePart = opaque === undefined ? '' : `,opaque=${escapeOptionValue(opaque)}`;
    return ['-add-fd', `fd=${this.fd},set=${set}${opaquePart}`];
  }

  /** The path QEMU resolves to an fd of set `set` (`/dev/fdset/S`). */
  static fdsetPath(set: number): string {
    return `/dev/fdset/${set}`;
  }
}

/**
 * A UNIX socketpair between parent and child (Node creates one for every `'pipe'` entry).
 * The child end is `fd`; after spawn the parent end is `socket(child)`.
 */
export class InheritedSocketpair extends InheritedFd {
  /** `-chardev socket,id=ID,fd=N` */
  chardevArgs(id: string): string[] {
    return ['-chardev', `socket,id=${checkId(id)},fd=${this.fd}`];
  }

  /** A QMP monitor on this socketpair: `-chardev socket,id=ID,fd=N -mon chardev=ID,mode=control`. */
  monitorArgs(id = 'qmp'): string[] {
    return [...this.chardevArgs(id), '-mon', `chardev=${checkId(id)},mode=control`];
  }

  /** The parent's end after spawn (a duplex `net.Socket`). */
  socket(child: ChildProcess): net.Socket {
    const end = child.stdio[this.fd];
    if (end === null || end === undefined)
      throw new Error(
        `child has no stdio[${this.fd}]: was it spawned with this InheritedFds' stdio?`,
      );
    return end as net.Socket;
  }

  /** The parent's end as a QMP address for `connect`. */
  address(child: ChildProcess): Extract<QmpAddress, { kind: 'duplex' }> & { stream: net.Socket } {
    return { kind: 'duplex', stream: this.socket(child), label: `socketpair:fd=${this.fd}` };
  }
}

/** A file opened by the parent and inherited by the child. */
export class InheritedFile extends InheritedFd {
  constructor(
    fd: number,
    /** The parent's fd (closed by `InheritedFds.closeParentCopies`). */
    readonly parentFd: number,
    readonly path: string | undefined,
    readonly owned: boolean,
  ) {
    super(fd);
  }
}

/**
 * Hands fds to a QEMU child without SCM_RIGHTS (Node has no API for it): each fd is put in
 * `spawn`'s `stdio` array at a known index, and the matching QEMU argv fragments are
 * produced from that index.
 *
 * ```ts
 * const fds = new InheritedFds();
 * const qmp = fds.socketpair();
 * const state = fds.openFile('/var/lib/vm/state.bin', 'r');
 * const child = spawn('qemu-system-x86_64',
 *   [...qmp.monitorArgs(), '-incoming', state.uri], { stdio: fds.stdio });
 * fds.closeParentCopies();
 * const client = await connect(qmp.address(child));
 * ```
 */
export class InheritedFds {
  private readonly entries: StdioEntry[];
  private readonly files: InheritedFile[] = [];

  /**
   * `base` is stdin/stdout/stderr (default: ignore stdin, pipe stdout and stderr — read or
   * `resume()` them, or QEMU blocks once a pipe is full; stderr is where QEMU reports
   * failed incoming migrations).
   */
  constructor(base: readonly [StdioEntry, StdioEntry, StdioEntry] = ['ignore', 'pipe', 'pipe']) {
    this.entries = [...base];
  }

  /** The `stdio` option for `spawn`. */
  get stdio(): StdioEntry[] {
    return [...this.entries];
  }

  /** The next child fd number. */
  get nextFd(): number {
    return this.entries.length;
  }

  /** A new socketpair (e.g. for a QMP monitor or a chardev). */
  socketpair(): InheritedSocketpair {
    const fd = this.entries.length;
    this.entries.push('pipe');
    return new InheritedSocketpair(fd);
  }

  /**
   * Opens `path` (flags as for `fs.open`: `'r'`, `'w'`, `'r+'`, …; mode 0600 on create) and
   * passes it; the parent copy is closed by `closeParentCopies()`.
   */
  openFile(path: string, flags: string | number = 'r', mode = 0o600): InheritedFile {
    const parentFd = openSync(path, flags, mode);
    return this.addFd(parentFd, { path, owned: true });
  }

  /** Passes an fd the caller opened (and keeps owning, unless `owned`). */
  addFd(parentFd: number, options: { path?: string; owned?: boolean } = {}): InheritedFile {
    const fd = this.entries.length;
    this.entries.push(parentFd);
    const file = new InheritedFile(fd, parentFd, options.path, options.owned ?? false);
    this.files.push(file);
    return file;
  }

  /** Passes a stream (e.g. a connected `net.Socket`) as the child's fd. */
  addStream(stream: Stream): InheritedFd {
    const fd = this.entries.length;
    this.entries.push(stream);
    return new InheritedFd(fd);
  }

  /** After `spawn`: close the parent's copies of files this builder opened. */
  closeParentCopies(): void {
    for (const file of this.files.splice(0)) {
      if (file.owned) {
        try {
          closeSync(file.parentFd);
        } catch {
          // already closed
        }
      }
    }
  }
}
