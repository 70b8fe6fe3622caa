/**
 * `qemu-storage-daemon`: QEMU's block layer without a machine. It opens images, runs block
 * jobs (commit, stream, mirror, backup) and serves exports (NBD, FUSE) with a QMP monitor of
 * its own, whose schema is a subset of QEMU's (`@qmpkit/qapi/qsd-<ver>`). That is how the
 * images of a VM that is *not* running are maintained with the same block-job runner as a
 * running one: `launchStorageDaemon({ blockdevs })`, then `commit(daemon, …)`.
 *
 * The daemon is started with an argument array (`--blockdev`/`--export`/`--nbd-server` as
 * JSON, typed from the daemon's schema), QMP on an inherited socketpair (`--chardev socket,fd=N`
 * + `--monitor`), `--pidfile` in a private run directory (so a sweep of that directory finds it)
 * and, where `setpriv` has `--pdeathsig`, a parent-death signal: it never outlives this
 * process. A failed start kills it and says why (`StorageDaemonError`, with its stderr).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockdevOptions, BlockExportOptions, SocketAddress } from '@qmpkit/qapi/qsd-7.2';
import {
  type Commands as QsdCommands,
  type Events as QsdEvents,
  tables as qsdTables,
} from '@qmpkit/qapi/qsd-7.2';
import {
  connect,
  defineBindings,
  type Logger,
  type QmpClient,
  type ValidateMode,
} from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { StorageDaemonError } from './errors.js';
import { waitForProcessGone } from './proc.js';
import type { ByteRing } from './ring.js';
import {
  awaitQmp,
  type ExitInfo,
  type LaunchErrorFactory,
  type SpawnedChild,
  spawnChild,
  within,
} from './spawn-qmp.js';
import {
  resolveStorageDaemon,
  type StorageDaemonBinary,
  storageDaemonEnv,
  storageDaemonSpecError,
} from './storage-daemon-binary.js';

/** The daemon's typed QMP client (its own 7.2 bindings; 10.0 answers the same for these). */
export type StorageDaemonQmp = QmpClient<QsdCommands, QsdEvents, never>;

/** `--nbd-server`: an NBD server started with the daemon (`NbdServerOptions`). */
export interface StorageDaemonNbdServer {
  readonly addr: SocketAddress;
  readonly 'tls-creds'?: string;
  readonly 'tls-authz'?: string;
  readonly 'max-connections'?: number;
}

export interface StorageDaemonOptions {
  /**
   * Which daemon: a release fetched into the cache (`'10.0'`), a path, a name on `PATH`
   * (default `qemu-storage-daemon`), or one already resolved (`resolveStorageDaemon`,
   * `storageDaemonFor`).
   */
  readonly qemu?: string | StorageDaemonBinary;
  /** Cache for a release name (default: `defaultCacheDir()`). */
  readonly cacheDir?: string;
  /** Nodes opened at start (`--blockdev`, one per entry, in order). */
  readonly blockdevs?: readonly BlockdevOptions[];
  /** `--nbd-server`. */
  readonly nbdServer?: StorageDaemonNbdServer;
  /** Exports (`--export`, after the nodes and the NBD server). */
  readonly exports?: readonly BlockExportOptions[];
  /** More arguments, appended as given (never through a shell). */
  readonly extraArgs?: readonly string[];
  /** Where its private run directory (pidfile) is created (default `os.tmpdir()`). */
  readonly runDirParent?: string;
  /** Milliseconds for the QMP greeting (default 30 000). */
  readonly launchTimeout?: number;
  readonly validate?: ValidateMode;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
}

const qsdBindings = defineBindings<QsdCommands, QsdEvents>(qsdTables);
const QMP_CHARDEV = 'qmpkit-qmp';
export const STORAGE_DAEMON_PIDFILE = 'qemu-storage-daemon.pid';

/**
 * The daemon's arguments (without the binary). Pure: the QMP fd number and the run directory
 * are passed in.
 */
export function storageDaemonArgs(
  options: Pick<StorageDaemonOptions, 'blockdevs' | 'nbdServer' | 'exports' | 'extraArgs'>,
  qmpFd: number,
  runDir: string,
): string[] {
  const args = [
    '--chardev',
    `socket,id=${QMP_CHARDEV},fd=${qmpFd}`,
    '--monitor',
    `chardev=${QMP_CHARDEV}`,
  ];
  // JSON: the daemon parses an argument that starts with `{` as JSON, so no value needs
  // escaping for its key=value syntax (a comma in a file name stays a comma).
  for (const b of options.blockdevs ?? []) args.push('--blockdev', JSON.stringify(b));
  if (options.nbdServer !== undefined) args.push('--nbd-server', JSON.stringify(options.nbdServer));
  for (const e of options.exports ?? []) args.push('--export', JSON.stringify(e));
  args.push(...(options.extraArgs ?? []));
  args.push('--pidfile', path.join(runDir, STORAGE_DAEMON_PIDFILE));
  return args;
}

/** A running `qemu-storage-daemon`. Start one with `launchStorageDaemon`. */
export class StorageDaemon {
  readonly qmp: StorageDaemonQmp;
  readonly pid: number;
  readonly argv: readonly string[];
  readonly binary: StorageDaemonBinary;
  /** Its private run directory (pidfile); removed when the daemon has ended. */
  readonly runDir: string;
  readonly #child: ChildProcess;
  readonly #stderr: ByteRing;
  readonly #exited: Promise<ExitInfo>;
  #exit: ExitInfo | undefined;
  #ending: Promise<ExitInfo> | undefined;

  /** @internal Use `launchStorageDaemon`. */
  constructor(fields: {
    qmp: StorageDaemonQmp;
    child: ChildProcess;
    argv: readonly string[];
    binary: StorageDaemonBinary;
    runDir: string;
    stderr: ByteRing;
    exited: Promise<ExitInfo>;
  }) {
    this.qmp = fields.qmp;
    this.#child = fields.child;
    this.pid = fields.child.pid as number;
    this.argv = fields.argv;
    this.binary = fields.binary;
    this.runDir = fields.runDir;
    this.#stderr = fields.stderr;
    this.#exited = fields.exited;
    void fields.exited.then((exit) => {
      this.#exit = exit;
    });
  }

  /** `running` until the process has exited. */
  get status(): 'running' | 'exited' {
    return this.#exit === undefined ? 'running' : 'exited';
  }

  /** The tail of its standard error. */
  get stderr(): string {
    return this.#stderr.text();
  }

  /** Resolves when the process has exited. */
  get exited(): Promise<ExitInfo> {
    return this.#exited;
  }

  /**
   * Ends the daemon cleanly: `quit` (it closes every image, flushing them), then waits for the
   * exit. One that does not exit within `timeoutMs` (default 10 000) is killed.
   */
  quit(options: { readonly timeoutMs?: number } = {}): Promise<ExitInfo> {
    this.#ending ??= this.#end(async () => {
      try {
        await this.qmp.execute('quit');
      } catch {
        // The daemon may close the socket before its reply reaches us (or was already gone):
        // whether it ended is decided by its exit below, which kills it if it did not.
      }
      const exit = await within(this.#exited, options.timeoutMs ?? 10_000);
      if (exit === undefined) this.#child.kill('SIGKILL');
    });
    return this.#ending;
  }

  /** SIGKILLs the daemon (images are not flushed) and waits until all its threads are gone. */
  kill(): Promise<ExitInfo> {
    this.#ending ??= this.#end(async () => {
      if (this.#exit === undefined) this.#child.kill('SIGKILL');
    });
    return this.#ending;
  }

  async #end(stop: () => Promise<void>): Promise<ExitInfo> {
    await stop();
    const exit = await this.#exited;
    // QMP's side ends with the process; close it so nothing waits on it.
    await this.qmp.close().catch(() => undefined); // already closed by the exit: nothing to report
    await waitForProcessGone(this.pid, 10_000);
    await rm(this.runDir, { recursive: true, force: true });
    return exit;
  }
}

/**
 * Starts a `qemu-storage-daemon` and connects to its QMP monitor. Rejects with
 * `StorageDaemonError`: `not-found` (no such binary), `exited` (it refused its arguments or
 * an image — `stderr` says why), `timeout`/`handshake` (no usable QMP; it was killed),
 * `spawn-failed`. Nothing is left running when it rejects.
 */
export async function launchStorageDaemon(
  options: StorageDaemonOptions = {},
): Promise<StorageDaemon> {
  let binary: StorageDaemonBinary;
  try {
    binary =
      typeof options.qemu === 'object'
        ? options.qemu
        : await resolveStorageDaemon(options.qemu, {
            ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
            ...(options.env === undefined ? {} : { env: options.env }),
          });
  } catch (error) {
    throw storageDaemonSpecError(
      typeof options.qemu === 'string' ? options.qemu : 'qemu-storage-daemon',
      error,
    );
  }
  const runDir = await mkdtemp(path.join(options.runDirParent ?? tmpdir(), 'qmpkit-qsd-'));
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const qmpPair = fds.socketpair();
  const args = storageDaemonArgs(options, qmpPair.fd, runDir);
  const argv = [binary.path, ...args];
  const removeRunDir = () => rm(runDir, { recursive: true, force: true });
  if (options.signal?.aborted) {
    fds.closeParentCopies();
    await removeRunDir();
    throw options.signal.reason;
  }
  const fail: LaunchErrorFactory = (reason, detail, fields, opts) =>
    new StorageDaemonError(reason, detail, fields, opts);
  let spawned: SpawnedChild;
  try {
    spawned = await spawnChild(binary.path, args, {
      fds,
      env: storageDaemonEnv(binary, options.env),
      ringBytes: 64 * 1024,
      stdoutIntoStderr: true,
      diesWithUs: true,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      fail,
    });
  } catch (error) {
    await removeRunDir();
    throw error;
  }
  const { child, exited, stderr } = spawned;
  const timeout = options.launchTimeout ?? 30_000;
  let qmp: StorageDaemonQmp;
  try {
    qmp = await awaitQmp(
      spawned,
      connect(qmpPair.address(child), {
        bindings: qsdBindings,
        connectTimeout: timeout,
        validate: options.validate ?? 'off',
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      }),
      {
        program: 'qemu-storage-daemon',
        timeoutMs: timeout,
        // A refused argument ends the daemon at once: its exit status and stderr say why.
        exitGraceMs: 5000,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        fail,
      },
    );
  } catch (error) {
    await waitForProcessGone(spawned.pid, 10_000);
    await removeRunDir();
    throw error;
  }
  return new StorageDaemon({ qmp, child, argv, binary, runDir, stderr, exited });
}
