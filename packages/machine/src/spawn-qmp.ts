/**
 * Starting a process whose QMP monitor is an inherited socketpair — QEMU (`startProcess`) and
 * `qemu-storage-daemon` (`launchStorageDaemon`) — in one place: the spawn with an argument
 * array (optionally under a parent-death signal), the stderr tail, the exit and drain
 * promises, `spawn`/`error` told apart (`not-found`, `spawn-failed`), and the wait for QMP
 * that says why it did not come (`exited` with the exit status, or `timeout`/`handshake` after
 * a SIGKILL). Failures are built by the caller's `fail`, so each keeps its own error class.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { isQmpConnectionError, type Logger } from '@qmpkit/transport';
import type { InheritedFds } from '@qmpkit/transport/fd';
import type { ProcessLaunchError, ProcessLaunchFailure, ProcessLaunchFields } from './errors.js';
import { diesWithUs } from './parent-death.js';
import { ByteRing } from './ring.js';

/** How a process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `promise`, or `undefined` when it has not settled within `ms`. */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** `exit code N` or `signal SIGX`. */
export function describeExit(exit: ExitInfo): string {
  return exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
}

/** Builds the caller's launch error (`QemuLaunchError`, `StorageDaemonError`). */
export type LaunchErrorFactory = (
  reason: ProcessLaunchFailure,
  detail: string,
  fields: ProcessLaunchFields,
  options?: { cause?: unknown },
) => ProcessLaunchError;

/** A process that has been spawned (its `spawn` event came). */
export interface SpawnedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The full command as the caller named it (binary first; without a `setpriv` wrapper). */
  readonly argv: readonly string[];
  readonly exited: Promise<ExitInfo>;
  /** How it ended, once it has. */
  readonly exit: ExitInfo | undefined;
  /** Resolves when every stdio stream has closed (stderr fully read). */
  readonly drained: Promise<void>;
  readonly stderr: ByteRing;
  readonly stdout: ByteRing;
  /** SIGKILLs it unless it has exited, and waits for the exit (and briefly for the drain). */
  kill(): Promise<ExitInfo>;
}

export interface SpawnChildOptions {
  /** The inherited descriptors (`fds.stdio`); the parent's copies are closed after the spawn. */
  readonly fds: InheritedFds;
  readonly env: NodeJS.ProcessEnv;
  /** Bytes of stderr (and stdout) kept. */
  readonly ringBytes: number;
  /** Collect stdout into the stderr ring (a daemon's diagnostics go to either). */
  readonly stdoutIntoStderr?: boolean;
  /** Run under `setpriv --pdeathsig SIGKILL` where it exists (see `diesWithUs`). */
  readonly diesWithUs?: boolean;
  readonly logger?: Logger;
  readonly fail: LaunchErrorFactory;
}

/**
 * Spawns `binary args` (no shell) and waits for its `spawn` event. Rejects with `fail`'s
 * error: `not-found` (ENOENT) or `spawn-failed`; the parent's copies of the inherited
 * descriptors are closed either way.
 */
export async function spawnChild(
  binary: string,
  args: readonly string[],
  options: SpawnChildOptions,
): Promise<SpawnedChild> {
  const argv = [binary, ...args];
  let child: ChildProcess;
  try {
    const run =
      options.diesWithUs === true
        ? await diesWithUs(binary, args, options.logger)
        : { command: binary, args: [...args] };
    // An argument array and no shell: nothing in the command line is ever interpreted.
    child = spawn(run.command, run.args, {
      stdio: options.fds.stdio,
      env: options.env,
      shell: false,
      windowsHide: true,
    });
  } catch (error) {
    throw options.fail(
      'spawn-failed',
      `cannot start ${binary}: ${String(error)}`,
      { argv },
      { cause: error },
    );
  } finally {
    options.fds.closeParentCopies();
  }
  const stderr = new ByteRing(options.ringBytes);
  const stdout = options.stdoutIntoStderr === true ? stderr : new ByteRing(options.ringBytes);
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  let exit: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const drained = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const spawned = await Promise.race([
    new Promise<true>((resolve) => child.once('spawn', () => resolve(true))),
    new Promise<Error>((resolve) => child.once('error', resolve)),
  ]);
  if (spawned !== true) {
    const code = (spawned as { code?: string }).code;
    throw options.fail(
      code === 'ENOENT' ? 'not-found' : 'spawn-failed',
      `cannot start ${binary} (${code ?? spawned.message})`,
      { argv },
      { cause: spawned },
    );
  }
  return {
    child,
    pid: child.pid as number,
    argv,
    exited,
    get exit() {
      return exit;
    },
    drained,
    stderr,
    stdout,
    async kill() {
      if (exit === undefined) child.kill('SIGKILL');
      const ended = await exited;
      await within(drained, 1000);
      return ended;
    },
  };
}

export interface AwaitQmpOptions {
  /** The program's name in messages (`QEMU`, `qemu-storage-daemon`). */
  readonly program: string;
  /** The connect timeout `connect` was given, for the message. */
  readonly timeoutMs: number;
  /** Milliseconds to wait for the exit status after a broken connection. */
  readonly exitGraceMs: number;
  readonly signal?: AbortSignal;
  readonly fail: LaunchErrorFactory;
}

/**
 * Waits for `connecting` (the QMP connection to `spawned`). When it fails: a process that
 * exited (or exits within `exitGraceMs`; none is waited for after a timeout or an abort) is
 * `exited` with its status and stderr; one still running is SIGKILLed and reported as
 * `timeout` or `handshake`.
 */
export async function awaitQmp<Q>(
  spawned: SpawnedChild,
  connecting: Promise<Q>,
  options: AwaitQmpOptions,
): Promise<Q> {
  try {
    return await connecting;
  } catch (error) {
    const fields = (exit: ExitInfo) => ({
      argv: spawned.argv,
      exitCode: exit.code,
      signal: exit.signal,
      stderr: spawned.stderr.text(),
    });
    // A connection that breaks usually means the process is exiting: give the exit status a
    // moment (a timeout or an abort needs no waiting).
    const timedOut = isQmpConnectionError(error) && error.code === 'ETIMEDOUT';
    const exit =
      spawned.exit ??
      (timedOut || options.signal?.aborted === true
        ? undefined
        : await within(spawned.exited, options.exitGraceMs));
    if (exit !== undefined) {
      await within(spawned.drained, 1000);
      throw options.fail(
        'exited',
        `${options.program} exited before QMP was ready (${describeExit(exit)})`,
        fields(exit),
        { cause: error },
      );
    }
    const killed = await spawned.kill();
    throw options.fail(
      timedOut ? 'timeout' : 'handshake',
      timedOut
        ? `no QMP greeting from ${options.program} (pid ${spawned.pid}) within ${options.timeoutMs} ms; it was killed`
        : `QMP handshake with ${options.program} (pid ${spawned.pid}) failed: ${error instanceof Error ? error.message : String(error)}; it was killed`,
      fields(killed),
      { cause: error },
    );
  }
}
