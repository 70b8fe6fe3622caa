/**
 * `qmpkit vm start`: spawns the supervisor (`qmpkit vm supervise`, hidden) as a detached
 * process in its own process group — `process.execPath` with an argument array and this
 * CLI's own entry (`bin.js`, or `bin.ts` through tsx when running from source) — with
 * stdout/stderr appended to `<dir>/supervisor.log` and a pipe on fd 3 on which it reports
 * one JSON line: ready (with its status) or the error that stopped it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { VmConfig } from '@qmpkit/devices';
import type { StrategyKind } from '@qmpkit/snapshots';
import { VmStartError } from '../errors.js';
import { ControlClient } from './client.js';
import { frozenImagesInUse, readVmConfig } from './config.js';
import { checkSocketPath, ensurePrivateDir, vmPaths } from './paths.js';
import { isRecord, isStatusResult, lineReader, type StatusResult } from './protocol.js';

export interface StartOptions {
  readonly dir: string;
  /** The configuration file; absent: relaunch from `<dir>/state.json`. */
  readonly config?: string;
  readonly accel?: readonly string[];
  readonly consoles?: readonly string[];
  readonly strategy?: StrategyKind | 'auto';
  readonly qemu?: string;
  /** Milliseconds until the supervisor must report (default 120 000). */
  readonly timeout?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Start even though the configuration's images are frozen layers of external snapshots. */
  readonly force?: boolean;
  /** Called with a function that cancels the start (SIGTERM to the supervisor), for Ctrl-C. */
  readonly onCancel?: (cancel: () => void) => void;
  /**
   * Start as the receiving side of a live migration (`vm receive`): the supervisor reports
   * the address to give the source (`onListening`), then ready once the guest runs here.
   * `timeout` then covers only the start up to listening.
   */
  readonly incoming?: IncomingOptions;
  readonly onListening?: (uri: string) => void;
  /** Start the clone `vm clone` prepared in `dir` (its `clone.json`) instead of booting. */
  readonly clone?: string;
}

export interface IncomingOptions {
  /** `tcp:HOST:PORT` (port 0: any free one) or `unix:PATH`. */
  readonly listen: string;
  /** Take the configuration and pinned machine type from this state file (another VM dir's). */
  readonly fromState?: string;
  readonly tlsDir?: string;
  readonly postcopy?: boolean;
  readonly machineType?: string;
  /** Receive the disks too (fresh images in `<dir>/disks`, exported over NBD). */
  readonly disks?: 'copy';
  /** With `disks: 'copy'`: each writable disk's size in bytes, by node name (the source's). */
  readonly diskSizes?: Readonly<Record<string, number>>;
}

/** `node` arguments that run this CLI's entry point, from `dist/` or from source. */
export function cliEntry(): string[] {
  const here = fileURLToPath(import.meta.url);
  const ext = path.extname(here);
  const entry = path.join(path.dirname(here), '..', `bin${ext}`);
  if (ext !== '.ts') return [entry];
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return ['--conditions=@qmpkit/source', '--import', tsx, entry];
}

/** The last lines of the supervisor's log, for errors. */
async function logTail(file: string, lines = 15): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function startSupervisor(options: StartOptions): Promise<StatusResult> {
  const paths = vmPaths(options.dir);
  await ensurePrivateDir(paths.dir);
  checkSocketPath(paths);
  try {
    const client = await ControlClient.connect(paths.dir, { timeout: 2000 });
    client.close();
    throw new VmStartError(
      paths.dir,
      'running',
      `a VM supervisor (pid ${client.pid}) already runs at ${paths.dir}; stop it first with: qmpkit vm stop --dir ${options.dir}`,
    );
  } catch (error) {
    if (error instanceof VmStartError) throw error;
  }
  let cwd = paths.dir;
  const args = ['vm', 'supervise', '--dir', paths.dir, '--notify-fd', '3'];
  if (options.config !== undefined) {
    const config = path.resolve(options.config);
    // Refused here, before anything is spawned.
    let parsed: VmConfig;
    try {
      parsed = await readVmConfig(config);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new VmStartError(
        paths.dir,
        'config',
        `${options.config}: ${code ?? (error instanceof Error ? error.message : String(error))}`,
        { cause: error },
      );
    }
    const frozen = await frozenImagesInUse(parsed, paths.snapshots);
    if (frozen.length > 0 && options.force !== true)
      throw new VmStartError(
        paths.dir,
        'config',
        `${frozen.map((f) => `${f.file} is a frozen layer of snapshot${f.snapshots.length > 1 ? 's' : ''} ${f.snapshots.map((n) => `'${n}'`).join(', ')}`).join('; ')}: a VM writing to it would change what they load. Start from where the VM left off with: qmpkit vm start --dir ${options.dir} (no configuration), or pass --force`,
      );
    args.push('--config', config);
    // Relative image paths in a configuration are relative to the configuration file.
    cwd = path.dirname(config);
  }
  for (const accel of options.accel ?? []) args.push('--accel', accel);
  for (const id of options.consoles ?? []) args.push('--console', id);
  if (options.strategy !== undefined) args.push('--strategy', options.strategy);
  if (options.qemu !== undefined) args.push('--qemu', options.qemu);
  if (options.clone !== undefined) args.push('--clone', path.resolve(options.clone));
  const incoming = options.incoming;
  if (incoming !== undefined) {
    args.push('--incoming', incoming.listen);
    if (incoming.fromState !== undefined)
      args.push('--from-state', path.resolve(incoming.fromState));
    if (incoming.tlsDir !== undefined) args.push('--tls-dir', path.resolve(incoming.tlsDir));
    if (incoming.postcopy === true) args.push('--postcopy');
    if (incoming.machineType !== undefined) args.push('--machine-type', incoming.machineType);
    if (incoming.disks === 'copy') args.push('--disks', 'copy');
    for (const [node, size] of Object.entries(incoming.diskSizes ?? {}))
      args.push('--disk-size', `${node}=${size}`);
  }

  const log = openSync(paths.log, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...cliEntry(), ...args], {
      cwd,
      detached: true,
      stdio: ['ignore', log, log, 'pipe'],
      env: options.env ?? process.env,
    });
  } finally {
    closeSync(log);
  }
  const notify = child.stdio[3] as Readable;
  const timeout = options.timeout ?? 120_000;
  const message = await new Promise<unknown>((resolve) => {
    const timer = setTimeout(() => resolve({ timeout: true }), timeout);
    const done = (value: unknown) => {
      clearTimeout(timer);
      resolve(value);
    };
    notify.on(
      'data',
      lineReader(
        (value) => {
          // A receiving supervisor listens first; from then on it waits for the source.
          if (isRecord(value) && typeof value.listening === 'string') {
            clearTimeout(timer);
            options.onListening?.(value.listening);
          } else done(value);
        },
        () => {},
      ),
    );
    notify.on('error', () => {});
    child.once('error', (error) => done({ spawnError: error }));
    options.onCancel?.(() => {
      child.kill('SIGTERM');
      done({ cancelled: true });
    });
    child.once('exit', (code, signal) => done({ exited: { code, signal } }));
  });
  notify.destroy();
  if (isRecord(message) && isStatusResult(message.ready)) {
    child.unref();
    return message.ready;
  }
  // The supervisor reports its error and exits by itself; otherwise it is ended here.
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    if (isRecord(message) && (message.timeout === true || message.cancelled === true))
      child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  }
  if (isRecord(message) && isRecord(message.error)) {
    const remote = message.error;
    throw new VmStartError(
      paths.dir,
      'launch',
      `the VM did not start: ${String(remote.message)}`,
      typeof remote.name === 'string' ? { remote: remote.name } : {},
    );
  }
  const why =
    isRecord(message) && message.cancelled === true
      ? 'interrupted'
      : isRecord(message) && message.timeout === true
        ? `it did not report within ${timeout} ms`
        : `the supervisor ended without reporting (${JSON.stringify(message)})`;
  throw new VmStartError(
    paths.dir,
    'launch',
    `the VM did not start: ${why}; the end of ${paths.log}:\n${await logTail(paths.log)}`,
  );
}
