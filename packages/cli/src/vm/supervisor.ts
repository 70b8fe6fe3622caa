/**
 * The supervisor behind `qmpkit vm start`: one detached process per VM directory that owns
 * the QEMU process (QMP is a socketpair only the launching process holds), its snapshot
 * store, and a private control socket speaking the JSON-lines protocol of `protocol.ts`.
 *
 * It runs until `stop`, SIGTERM/SIGHUP/SIGINT, or QEMU exiting on its own; then it stops
 * QEMU (if still there), removes the socket and returns. One save, load or delete runs at a
 * time (the store is one process's); `status` and `list` are answered meanwhile.
 */
import { chmod, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import {
  backupFull,
  backupIncremental,
  type PullPhase,
  pullBackupFull,
  pullBackupIncremental,
} from '@qmpkit/backup';
import type { AccelConfig, VmConfig } from '@qmpkit/devices';
import {
  type BlockJob,
  type ExitInfo,
  isLiveMigrationError,
  type LiveMigration,
  launch,
  Machine,
  type MigrationProgress,
  type MigrationTransport,
  migrate,
  migrateTo,
  parseMigrationAddress,
  planChainJob,
  readState,
  receiveMigration,
  recoverPostcopy,
  runChainJob,
} from '@qmpkit/machine';
import {
  isSnapshotAbortedError,
  openSnapshots,
  type SnapshotProgress,
  type Snapshots,
  type StrategyKind,
  startPreparedClone,
} from '@qmpkit/snapshots';
import { backupSummary, summedProgress } from './backup-summary.js';
import { readVmConfig } from './config.js';
import { checkSocketPath, ensurePrivateDir, type VmPaths, vmPaths } from './paths.js';
import {
  type AbortCheck,
  type BackupParams,
  type BlockParams,
  isRecord,
  isRequest,
  type LoadParams,
  lineReader,
  METHODS,
  type Method,
  type Methods,
  type MigrateParams,
  type MigrateProgressLine,
  type PostcopyRecoverParams,
  PROTOCOL_VERSION,
  type Request,
  type SaveParams,
  type StatusResult,
  type SubscribeNotice,
  toWireError,
  type WireError,
} from './protocol.js';
import { snapshotTree } from './tree.js';

export const STRATEGIES: readonly StrategyKind[] = ['external', 'internal-jobs', 'internal-hmp'];

/** Events after which subscribers get the status again (the run state may have changed). */
const RUN_STATE_EVENTS = new Set([
  'STOP',
  'RESUME',
  'SHUTDOWN',
  'RESET',
  'SUSPEND',
  'WAKEUP',
  'GUEST_PANICKED',
]);

export interface SuperviseOptions {
  readonly dir: string;
  /** A `qmpkit-devices` configuration file; absent: relaunch from `<dir>/state.json`. */
  readonly config?: string;
  /** Overrides the configuration's accelerators. */
  readonly accel?: readonly string[];
  /** Chardev ids whose output the supervisor keeps (snapshots carry their unread text). */
  readonly consoles?: readonly string[];
  readonly strategy?: StrategyKind | 'auto';
  readonly qemu?: string;
  /**
   * Receive a live migration instead of booting (`vm receive`): listen there, report the
   * address (`notify({listening})`), and be ready once the guest runs here.
   */
  readonly incoming?: {
    readonly listen: string;
    /** The configuration and pinned machine type from this state file (not `config`). */
    readonly fromState?: string;
    readonly tlsDir?: string;
    readonly postcopy?: boolean;
    readonly machineType?: string;
    /** Receive the disks too: fresh images of these sizes in `<dir>/disks`, exported over NBD. */
    readonly disks?: 'copy';
    readonly diskSizes?: Readonly<Record<string, number>>;
  };
  /**
   * Start a clone prepared by `vm clone` instead of booting: this is its `clone.json`
   * (`@qmpkit/snapshots`' `prepareClones`), in `dir`; QEMU loads the snapshot's state.
   */
  readonly clone?: string;
  /**
   * Called once: the VM is ready (with its status) or could not start. A receiving supervisor
   * first reports `{listening: uri}`.
   */
  readonly notify?: (
    message: { ready: StatusResult } | { error: WireError } | { listening: string },
  ) => void;
  /** Where log lines go (default: stdout, which `vm start` points at `supervisor.log`). */
  readonly log?: (line: string) => void;
  /**
   * Stop on SIGTERM/SIGHUP/SIGINT (default true, as `vm supervise` runs). False for a
   * supervisor embedded in a program that owns its signals (a test harness): it ends by
   * `stop` over the control socket or QEMU exiting.
   */
  readonly signals?: boolean;
}

class ProtocolError extends Error {
  override readonly name = 'ProtocolError' as const;
}

class SupervisorBusyError extends Error {
  override readonly name = 'SupervisorBusyError' as const;
  readonly busy: { readonly method: Method; readonly name: string };
  constructor(busy: { method: Method; name: string }) {
    super(`a ${busy.method} of '${busy.name}' is in progress; try again when it has finished`);
    this.busy = busy;
  }
}

class SupervisorStoppingError extends Error {
  override readonly name = 'SupervisorStoppingError' as const;
}

/**
 * `postcopy-pause` or `postcopy-recover` asked of a VM whose migration is not in the state the
 * verb needs: `state` is the source QEMU's migration status (`none` without a migration), or
 * `postcopy-paused` when a paused one waits for `postcopy-recover`.
 */
class PostcopyStateError extends Error {
  override readonly name = 'PostcopyStateError' as const;
  readonly state: string;
  /** The state the verb needs. */
  readonly wanted: 'postcopy-active' | 'postcopy-paused';
  constructor(message: string, state: string, wanted: 'postcopy-active' | 'postcopy-paused') {
    super(message);
    this.state = state;
    this.wanted = wanted;
  }
}

/** A post-copy migration to a VM directory that this supervisor runs or holds paused. */
interface PostcopyRun {
  readonly to: VmPaths;
  readonly transport: MigrationTransport;
  /** The target QEMU, once started. */
  target: Machine | undefined;
}

interface Connection {
  readonly socket: net.Socket;
  /** Running saves and loads started on this connection, by request id. */
  readonly operations: Map<number, AbortController>;
  send(value: unknown): void;
}

interface Busy {
  readonly method: Method;
  readonly name: string;
  readonly controller: AbortController;
  readonly done: Promise<unknown>;
}

/** Refuses to start when another supervisor answers on the socket; removes a stale one. */
async function claimSocket(paths: VmPaths): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const socket = net.connect(paths.control);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (alive)
    throw new Error(`a qmpkit supervisor already runs at ${paths.dir} (qmpkit vm status --dir …)`);
  await rm(paths.control, { force: true });
}

/** Runs the supervisor until it is stopped; resolves to QEMU's exit. */
const SIGNALS = ['SIGTERM', 'SIGHUP', 'SIGINT'] as const;

/**
 * Signals are caught from the first moment (a supervisor killed by the default action would
 * leave QEMU running without a monitor): before the control socket is up they only note the
 * request, which is honoured as soon as QEMU is there to be stopped.
 */
interface Stopper {
  requested: NodeJS.Signals | undefined;
  handler: ((signal: NodeJS.Signals) => void) | undefined;
}

export async function supervise(options: SuperviseOptions): Promise<ExitInfo | undefined> {
  const log =
    options.log ??
    ((line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
  const stopper: Stopper = { requested: undefined, handler: undefined };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopper.handler !== undefined) stopper.handler(signal);
    else stopper.requested ??= signal;
  };
  const signals = options.signals === false ? [] : SIGNALS;
  for (const s of signals) process.on(s, onSignal);
  try {
    return await superviseWith(options, stopper, log);
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

async function superviseWith(
  options: SuperviseOptions,
  stopper: Stopper,
  log: (line: string) => void,
): Promise<ExitInfo | undefined> {
  const paths = vmPaths(options.dir);
  const fail = async (what: string, error: unknown, machine?: Machine) => {
    log(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    options.notify?.({ error: toWireError(error) });
    await machine?.stop().catch(() => undefined);
    return undefined;
  };
  let machine: Machine;
  try {
    await ensurePrivateDir(paths.dir);
    checkSocketPath(paths);
    await claimSocket(paths);
    machine = await startMachine(paths, options, log, stopper);
  } catch (error) {
    return fail('start failed', error);
  }
  if (stopper.requested !== undefined)
    return fail('start cancelled', new Error(`${stopper.requested} during start-up`), machine);
  let snapshots: Snapshots;
  try {
    snapshots = await openSnapshots(machine, {
      dir: paths.snapshots,
      strategy: options.strategy ?? 'auto',
    });
  } catch (error) {
    return fail('snapshot store failed', error, machine);
  }
  if (stopper.requested !== undefined)
    return fail('start cancelled', new Error(`${stopper.requested} during start-up`), machine);
  const debris = snapshots.debris;
  if (debris.files.length + debris.tags.length + debris.pending.length > 0)
    log(
      `snapshot store: removed debris of unfinished saves (${debris.pending.join(', ') || 'no pending'}; ${debris.files.length} files, ${debris.tags.length} tags)`,
    );
  log(`snapshot strategy for saves: ${snapshots.kind}`);
  return new Supervisor(paths, machine, snapshots, log).serve(options.notify, stopper);
}

async function startMachine(
  paths: VmPaths,
  options: SuperviseOptions,
  log: (line: string) => void,
  stopper: Stopper,
): Promise<Machine> {
  const consoles = options.consoles ?? [];
  if (options.incoming !== undefined)
    return receiveMachine(paths, options, options.incoming, log, stopper);
  if (options.clone !== undefined) {
    log(`starting the clone prepared in ${options.clone}`);
    return startPreparedClone(options.clone, {
      runDir: paths.runDir,
      stateFile: paths.stateFile,
      ...(options.consoles !== undefined ? { consoles: options.consoles } : {}),
      ...(options.qemu !== undefined ? { qemu: options.qemu } : {}),
    });
  }
  if (options.config === undefined) {
    log(`relaunching from ${paths.stateFile}`);
    return Machine.relaunch(paths.stateFile);
  }
  let config: VmConfig = await readVmConfig(options.config);
  if (options.accel !== undefined && options.accel.length > 0)
    config = { ...config, accel: options.accel as AccelConfig[] };
  log(`launching ${options.config}`);
  return launch(config, {
    runDir: paths.runDir,
    stateFile: paths.stateFile,
    consoles,
    ...(options.qemu !== undefined ? { qemu: options.qemu } : {}),
  });
}

/** `vm receive`: the guest arrives from a source elsewhere; see `receiveMigration`. */
async function receiveMachine(
  paths: VmPaths,
  options: SuperviseOptions,
  incoming: NonNullable<SuperviseOptions['incoming']>,
  log: (line: string) => void,
  stopper: Stopper,
): Promise<Machine> {
  let config: VmConfig;
  let machineType = incoming.machineType;
  if (incoming.fromState !== undefined) {
    const state = await readState(incoming.fromState);
    config = state.config;
    machineType ??= state.launch.machineType;
  } else if (options.config !== undefined) config = await readVmConfig(options.config);
  else throw new Error('vm receive needs a configuration or a VM directory to take it from');
  if (options.accel !== undefined && options.accel.length > 0)
    config = { ...config, accel: options.accel as AccelConfig[] };
  const pending = await receiveMigration(config, {
    runDir: paths.runDir,
    stateFile: paths.stateFile,
    consoles: options.consoles ?? [],
    listen: incoming.listen,
    ...(options.qemu !== undefined ? { qemu: options.qemu } : {}),
    ...(machineType !== undefined ? { machineType } : {}),
    ...(incoming.tlsDir !== undefined ? { tls: { dir: incoming.tlsDir } } : {}),
    ...(incoming.postcopy === true ? { postcopy: true } : {}),
    ...(incoming.disks === 'copy'
      ? {
          disks: 'copy' as const,
          diskSizes: incoming.diskSizes ?? {},
          diskDir: path.join(paths.dir, 'disks'),
        }
      : {}),
    logger: { warn: (message) => log(message) },
  });
  log(`receiving: QEMU pid ${pending.machine.pid} listens on ${pending.uri}`);
  options.notify?.({ listening: pending.uri });
  // A signal while waiting gives up: the receiving QEMU is killed, the source runs on.
  stopper.handler = (signal) => {
    log(`${signal}: no longer waiting for the guest`);
    // How the cancel ended shows in `done`, awaited below.
    void pending.cancel(new Error(`${signal} while receiving`)).catch(() => undefined);
  };
  if (stopper.requested !== undefined) stopper.handler(stopper.requested);
  let received: Awaited<typeof pending.done>;
  try {
    received = await pending.done;
  } finally {
    stopper.handler = undefined;
  }
  if (received.resumeError !== undefined)
    log(
      `received, but not resumed: ${received.resumeError.message} (qmpkit vm resume --dir resumes it)`,
    );
  else log(`received: the guest ${received.running ? 'runs' : 'is paused'} here`);
  return received.machine;
}

class Supervisor {
  // All three change when the VM migrates into another directory (`migrate`).
  #paths: VmPaths;
  #machine: Machine;
  #snapshots: Snapshots;
  #server: net.Server | undefined;
  readonly #log: (line: string) => void;
  readonly #startedAt = new Date().toISOString();
  readonly #connections = new Set<Connection>();
  #busy: Busy | undefined;
  #stopping: Promise<ExitInfo> | undefined;
  /** `subscribe` requests: each gets every notice. */
  readonly #subscribers = new Set<(notice: SubscribeNotice) => void>();
  /** The QMP client whose events reach the subscribers, and how to stop listening to it. */
  #events: { qmp: unknown; off: () => void } | undefined;
  /** The `migrate` to a VM directory under way (for `postcopy-pause`). */
  #live:
    | { readonly post: PostcopyRun; readonly run: LiveMigration; readonly recovers: boolean }
    | undefined;
  /**
   * A post-copy migration whose link broke and was not recovered: the source (`#machine`) and
   * this target are both alive and paused until `postcopy-recover` (or `stop`, which ends both).
   */
  #paused: (PostcopyRun & { target: Machine }) | undefined;

  constructor(paths: VmPaths, machine: Machine, snapshots: Snapshots, log: (line: string) => void) {
    this.#paths = paths;
    this.#machine = machine;
    this.#snapshots = snapshots;
    this.#log = log;
  }

  async serve(notify: SuperviseOptions['notify'], stopper: Stopper): Promise<ExitInfo> {
    try {
      this.#server = await this.#listen(this.#paths);
    } catch (error) {
      notify?.({ error: toWireError(error) });
      await this.#machine.stop().catch(() => undefined);
      throw error;
    }
    this.#log(
      `ready: QEMU pid ${this.#machine.pid}, control socket ${this.#paths.control}, supervisor pid ${process.pid}`,
    );
    notify?.({ ready: await this.#status() });
    this.#attachEvents();

    stopper.handler = (signal) => {
      this.#log(`${signal}: stopping`);
      void this.#stop();
    };
    if (stopper.requested !== undefined) stopper.handler(stopper.requested);
    // QEMU may end on its own (guest poweroff, crash): notice it between operations.
    const watch = setInterval(() => {
      if (this.#machine.status === 'exited' && this.#busy === undefined) {
        this.#log('QEMU exited on its own: stopping');
        void this.#stop();
      }
    }, 500);

    const exit = await new Promise<ExitInfo>((resolve) => {
      this.#onStopped = resolve;
    });
    clearInterval(watch);
    this.#events?.off();
    const server = this.#server;
    await new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      else server.close(() => resolve());
      for (const connection of this.#connections) connection.socket.end();
      setTimeout(() => {
        for (const connection of this.#connections) connection.socket.destroy();
      }, 1000).unref();
    });
    await rm(this.#paths.control, { force: true });
    this.#log(`stopped (QEMU exit ${exit.signal ?? exit.code})`);
    return exit;
  }

  #onStopped: (exit: ExitInfo) => void = () => {};

  /** A control socket at `paths.control` (owner-only), served by this supervisor. */
  async #listen(paths: VmPaths): Promise<net.Server> {
    const server = net.createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(paths.control, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // The directory is 0700 already; the socket itself is made owner-only as well.
    await chmod(paths.control, 0o600);
    server.on('error', (error) => this.#log(`control socket: ${error.message}`));
    return server;
  }

  #accept(socket: net.Socket): void {
    const connection: Connection = {
      socket,
      operations: new Map(),
      send(value) {
        if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(value)}\n`);
      },
    };
    this.#connections.add(connection);
    socket.on('close', () => this.#connections.delete(connection));
    socket.on('error', () => {});
    connection.send({ hello: { protocol: PROTOCOL_VERSION, pid: process.pid } });
    socket.on(
      'data',
      lineReader(
        (value) => {
          void this.#handle(connection, value);
        },
        (problem) =>
          connection.send({ id: null, error: { name: 'ProtocolError', message: problem } }),
      ),
    );
  }

  async #handle(connection: Connection, value: unknown): Promise<void> {
    if (!isRequest(value)) {
      connection.send({
        id: isRecord(value) && typeof value.id === 'number' ? value.id : null,
        error: { name: 'ProtocolError', message: 'expected {"id": <number>, "method": "…"}' },
      });
      return;
    }
    const request = value;
    try {
      const result = await this.#dispatch(connection, request);
      connection.send({ id: request.id, result });
    } catch (error) {
      // An aborted save or load carries `check` (see `AbortCheck`), copied like any field.
      connection.send({ id: request.id, error: toWireError(error) });
    }
  }

  async #dispatch(connection: Connection, request: Request): Promise<unknown> {
    const method = request.method as Method;
    if (!METHODS.includes(method))
      throw new ProtocolError(`unknown method '${request.method}' (${METHODS.join(', ')})`);
    const params = isRecord(request.params) ? request.params : {};
    switch (method) {
      case 'status':
        return this.#status();
      case 'list':
        return {
          current: this.#snapshots.store.manifest.current,
          snapshots: await this.#snapshots.list(),
        } satisfies Methods['list']['result'];
      case 'abort': {
        if (typeof params.id !== 'number') throw new ProtocolError('abort: params.id (a number)');
        const controller = connection.operations.get(params.id);
        if (controller === undefined) return { aborted: false };
        this.#log(`abort requested for request ${params.id}`);
        controller.abort(new Error('aborted by the client'));
        return { aborted: true };
      }
      case 'stop':
        return this.#stop();
      case 'tree':
        return {
          current: this.#snapshots.store.manifest.current,
          roots: snapshotTree(await this.#snapshots.list()),
        } satisfies Methods['tree']['result'];
      case 'graph':
        return this.#graph();
      case 'subscribe':
        return this.#subscribe(connection, request.id);
      case 'save':
        return this.#exclusive(connection, request.id, 'save', saveParams(params), (p, signal) =>
          this.#save(connection, request.id, p, signal),
        );
      case 'load':
        return this.#exclusive(connection, request.id, 'load', loadParams(params), (p, signal) =>
          this.#load(connection, request.id, p, signal),
        );
      case 'migrate': {
        const p = migrateParams(params);
        return this.#exclusive(
          connection,
          request.id,
          'migrate',
          { ...p, name: p.to },
          (q, signal) => this.#migrate(connection, request.id, q, signal),
        );
      }
      case 'delete':
        return this.#exclusive(connection, request.id, 'delete', nameParam(params), (p) =>
          this.#delete(p.name),
        );
      case 'block': {
        const p = blockParams(params);
        return this.#exclusive(
          connection,
          request.id,
          'block',
          { name: `${p.op}${p.disk === undefined ? '' : ` of ${p.disk}`}`, params: p },
          (q) => this.#block(connection, request.id, q.params),
        );
      }
      case 'postcopy-pause':
        return this.#postcopyPause();
      case 'postcopy-recover': {
        const p = recoverParams(params);
        // Before the busy check: a migration under way is the state to report.
        const paused = await this.#pausedPostcopy();
        return this.#exclusive(
          connection,
          request.id,
          'postcopy-recover',
          { name: paused.to.dir, params: p },
          (q) => this.#postcopyRecover(paused, q.params),
        );
      }
      case 'pause':
      case 'resume':
        // Exclusive: a save, load or migration decides the run state while it runs.
        return this.#exclusive(connection, request.id, method, { name: method }, async () => {
          await this.#machine.qmp.execute(method === 'pause' ? 'stop' : 'cont');
          return this.#status();
        });
      case 'backup': {
        const p = backupParams(params);
        // `name` is what `status` shows as busy.
        return this.#exclusive(
          connection,
          request.id,
          'backup',
          { name: `${p.kind} to ${p.to}`, params: p },
          (q, signal) => this.#backup(connection, request.id, q.params, signal),
        );
      }
    }
  }

  /** A commit/stream/mirror of one disk's chain, with the job's progress as lines. */
  async #block(
    connection: Connection,
    id: number,
    params: BlockParams,
  ): Promise<Methods['block']['result']> {
    const started = performance.now();
    const plan = planChainJob(this.#machine.config, params);
    const result = await runChainJob(this.#machine, plan, {
      ...(params.speed === undefined ? {} : { speed: params.speed }),
      onJob: (job) =>
        void (async () => {
          for await (const u of job.progress({ intervalMs: 500 })) {
            if (u.kind !== 'progress') continue;
            connection.send({
              id,
              progress: {
                phase: params.op,
                bytes: u.offset,
                totalBytes: u.len,
                percent: u.len > 0 ? (100 * u.offset) / u.len : undefined,
                elapsedMs: performance.now() - started,
              },
            });
          }
        })().catch((error: unknown) =>
          // Progress is a courtesy: the job's own result reports a lost job.
          this.#log(`${params.op} progress: ${String(error)}`),
        ),
    });
    return { ...result, totalMs: performance.now() - started };
  }

  /** A backup of every disk into `params.to`, with the jobs' summed progress as lines. */
  async #backup(
    connection: Connection,
    id: number,
    params: BackupParams,
    signal: AbortSignal,
  ): Promise<Methods['backup']['result']> {
    const started = performance.now();
    const done = new Map<string, { offset: number; len: number }>();
    const report = () =>
      connection.send({
        id,
        progress: {
          phase: 'backup',
          ...summedProgress(done),
          elapsedMs: performance.now() - started,
        },
      });
    const options = {
      dir: params.to,
      signal,
      ...(params.disks !== undefined ? { disks: params.disks } : {}),
      onJobs: (jobs: readonly { device: string; job: BlockJob }[]) => {
        for (const { device, job } of jobs)
          void (async () => {
            for await (const u of job.progress({ intervalMs: 500 })) {
              if (u.kind !== 'progress') continue;
              done.set(device, { offset: u.offset, len: u.len });
              report();
            }
          })().catch((error: unknown) =>
            // Progress is a courtesy: the backup's own result reports a lost job.
            this.#log(`backup progress of ${device}: ${String(error)}`),
          );
      },
    };
    const ifBroken = params.ifBroken !== undefined ? { ifBroken: params.ifBroken } : {};
    // Pull mode: progress is the bytes read from the export, of the extents to read.
    const pullOptions = {
      ...options,
      ...ifBroken,
      ...(params.tcp !== undefined ? { tcp: params.tcp } : {}),
      onPhase: (p: PullPhase) => {
        if (p.phase !== 'extent') return;
        done.set('pull', { offset: p.bytesRead, len: p.totalBytes });
        report();
      },
    };
    const push = { ...options, ...(params.speed !== undefined ? { speed: params.speed } : {}) };
    const result =
      params.pull === true
        ? params.kind === 'full'
          ? await pullBackupFull(this.#machine, pullOptions)
          : await pullBackupIncremental(this.#machine, pullOptions)
        : params.kind === 'full'
          ? await backupFull(this.#machine, push)
          : await backupIncremental(this.#machine, { ...push, ...ifBroken });
    return backupSummary(result, params.to, performance.now() - started);
  }

  async #exclusive<P extends { readonly name: string }, T>(
    connection: Connection,
    id: number,
    method: Method,
    params: P,
    run: (params: P, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (this.#stopping !== undefined) throw new SupervisorStoppingError('the VM is stopping');
    if (this.#busy !== undefined) throw new SupervisorBusyError(this.#busy);
    const controller = new AbortController();
    // Marked busy before the operation's first step runs.
    const done = Promise.resolve().then(() => run(params, controller.signal));
    this.#busy = { method, name: params.name, controller, done };
    connection.operations.set(id, controller);
    this.#log(`${method} '${params.name}' started`);
    this.#publishStatus();
    try {
      const result = await done;
      this.#log(`${method} '${params.name}' done`);
      return result;
    } catch (error) {
      this.#log(
        `${method} '${params.name}' failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      );
      throw error;
    } finally {
      connection.operations.delete(id);
      this.#busy = undefined;
      // A load or migrate may have replaced the QEMU process (and its QMP client).
      this.#attachEvents();
      this.#publishStatus();
    }
  }

  /**
   * Streams notices to `connection` as progress lines of request `id` until `abort {id}`
   * or the connection closes; then answers with why it ended.
   */
  async #subscribe(connection: Connection, id: number): Promise<Methods['subscribe']['result']> {
    const controller = new AbortController();
    connection.operations.set(id, controller);
    const send = (notice: SubscribeNotice) => connection.send({ id, progress: notice });
    this.#subscribers.add(send);
    try {
      send({ kind: 'status', status: await this.#status() });
      const ended = await new Promise<string>((resolve) => {
        controller.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
        connection.socket.once('close', () => resolve('closed'));
      });
      return { ended };
    } finally {
      this.#subscribers.delete(send);
      connection.operations.delete(id);
    }
  }

  /** Listens to the current QEMU's events (again, when the process changed). */
  #attachEvents(): void {
    const qmp = this.#machine.qmp;
    if (this.#events?.qmp === qmp) return;
    this.#events?.off();
    const off = qmp.onAny((event) => {
      const notice: SubscribeNotice = {
        kind: 'event',
        event: {
          event: event.event,
          ...('data' in event && event.data !== undefined ? { data: event.data } : {}),
          timestamp: event.timestamp,
        },
      };
      for (const send of this.#subscribers) send(notice);
      if (RUN_STATE_EVENTS.has(event.event)) this.#publishStatus();
    });
    this.#events = { qmp, off };
  }

  /** Sends the status to every subscriber (nothing to do without one). */
  #publishStatus(): void {
    if (this.#subscribers.size === 0) return;
    void this.#status().then(
      (status) => {
        for (const send of this.#subscribers) send({ kind: 'status', status });
      },
      // A status that cannot be read now (QEMU going away) is published by the next change.
      (error: unknown) => this.#log(`status for subscribers: ${String(error)}`),
    );
  }

  async #graph(): Promise<Methods['graph']['result']> {
    if (this.#machine.status !== 'running')
      throw new SupervisorStoppingError(`QEMU is ${this.#machine.status}: no block graph`);
    const graph = await this.#machine.qmp.execute('x-debug-query-block-graph');
    return {
      nodes: graph.nodes.map((n) => ({ id: n.id, type: n.type, name: n.name })),
      edges: graph.edges.map((e) => ({ parent: e.parent, child: e.child, name: e.name })),
    };
  }

  async #runState(): Promise<string> {
    if (this.#machine.status !== 'running') return this.#machine.status;
    try {
      return (await this.#machine.qmp.execute('query-status')).status;
    } catch {
      return this.#machine.status;
    }
  }

  async #status(): Promise<StatusResult> {
    const v = this.#machine.qemuVersion;
    return {
      dir: this.#paths.dir,
      pid: process.pid,
      startedAt: this.#startedAt,
      qemu: {
        pid: this.#machine.pid,
        version: `${v.major}.${v.minor}.${v.micro}`,
        accel: this.#machine.accel,
        runState: await this.#runState(),
      },
      strategy: this.#snapshots.kind,
      busy: this.#busy ? { method: this.#busy.method, name: this.#busy.name } : null,
      snapshots: this.#snapshots.store.snapshots().length,
      ...(this.#paused !== undefined ? { postcopyPaused: { to: this.#paused.to.dir } } : {}),
    };
  }

  /** After an abort: whether the store's entry for `name` is the one from before. */
  async #abortCheck(name: string, before: string | null): Promise<AbortCheck> {
    return {
      before,
      after: this.#snapshots.store.find(name)?.id ?? null,
      runState: await this.#runState(),
    };
  }

  async #save(
    connection: Connection,
    id: number,
    params: SaveParams,
    signal: AbortSignal,
  ): Promise<Methods['save']['result']> {
    const kind = params.strategy ?? this.#snapshots.kind;
    const before = this.#snapshots.store.find(params.name);
    const onProgress = (progress: SnapshotProgress) => connection.send({ id, progress });
    try {
      if (before !== undefined && before.strategy !== kind && params.overwrite === true) {
        // Another strategy's snapshot of that name goes first (as `Snapshots.save` does).
        await this.#snapshots.delete(params.name);
      }
      const result = await this.#snapshots.strategy(kind).save(params.name, {
        signal,
        onProgress,
        ...(params.live !== undefined ? { live: params.live } : {}),
        ...(params.portable !== undefined ? { portable: params.portable } : {}),
        ...(params.sharedRam !== undefined ? { sharedRam: params.sharedRam } : {}),
        ...(params.diskOnly !== undefined ? { diskOnly: params.diskOnly } : {}),
        ...(params.requireQuiesce !== undefined ? { requireQuiesce: params.requireQuiesce } : {}),
        ...(params.overwrite !== undefined ? { overwrite: params.overwrite } : {}),
        ...(params.description !== undefined ? { description: params.description } : {}),
      });
      return {
        name: result.snapshot.name,
        strategy: result.strategy,
        totalMs: result.timings.totalMs,
        downtimeMs: result.timings.downtimeMs ?? null,
        bytes: result.bytesWritten,
        live: result.snapshot.live,
        ...(result.sharedRam !== undefined
          ? {
              sharedRam: result.sharedRam.used
                ? { used: true as const, ramBytes: result.sharedRam.ramFile.bytes }
                : {
                    used: false as const,
                    reason: result.sharedRam.reason,
                    detail: result.sharedRam.detail,
                  },
            }
          : {}),
        ...(result.snapshot.consistency !== undefined
          ? { consistency: result.snapshot.consistency }
          : {}),
      };
    } catch (error) {
      if (isSnapshotAbortedError(error))
        Object.assign(error, { check: await this.#abortCheck(params.name, before?.id ?? null) });
      throw error;
    }
  }

  async #load(
    connection: Connection,
    id: number,
    params: LoadParams,
    signal: AbortSignal,
  ): Promise<Methods['load']['result']> {
    const { name } = params;
    const onProgress = (progress: SnapshotProgress) => connection.send({ id, progress });
    const before = this.#snapshots.store.find(name)?.id ?? null;
    try {
      const result = await this.#snapshots.load(name, {
        signal,
        onProgress,
        ...(params.qemu !== undefined ? { qemu: params.qemu } : {}),
        ...(params.force === true ? { force: true } : {}),
        onWarning: (message) => this.#log(`warning: ${message}`),
      });
      const v = this.#machine.qemuVersion;
      const compat = result.compat;
      return {
        name: result.snapshot.name,
        strategy: result.strategy,
        totalMs: result.timings.totalMs,
        downtimeMs: result.timings.downtimeMs ?? null,
        bytes: result.bytesRead,
        verified: result.verified ?? null,
        qemu: {
          version: `${v.major}.${v.minor}.${v.micro}`,
          path: this.#machine.qemuBinary?.path ?? null,
        },
        compat:
          compat === undefined
            ? null
            : {
                check: compat.check,
                verdict: compat.verdict ?? null,
                flaggedSections: compat.flaggedSections,
                flaggedButLoaded: compat.flaggedButLoaded,
              },
        warnings: result.warnings,
      };
    } catch (error) {
      if (isSnapshotAbortedError(error))
        Object.assign(error, { check: await this.#abortCheck(name, before) });
      throw error;
    }
  }

  async #delete(name: string): Promise<Methods['delete']['result']> {
    const result = await this.#snapshots.delete(name);
    return {
      name: result.snapshot.name,
      strategy: result.strategy,
      totalMs: result.totalMs,
      merged: result.merged,
      removed: result.removed,
    };
  }

  /**
   * Live-migrates the VM into a new QEMU whose VM directory is `params.to` (`@qmpkit/machine`'s
   * `migrate`: the source runs on after any failure or abort). On success this supervisor
   * serves the VM from there: control socket and snapshot store move to the new directory, the
   * old directory keeps a state file that says where the VM went. Its log stays where it was.
   */
  async #migrate(
    connection: Connection,
    id: number,
    params: MigrateParams,
    signal: AbortSignal,
  ): Promise<Methods['migrate']['result']> {
    if (isAddress(params.to)) return this.#migrateTo(connection, id, params, signal);
    const to = vmPaths(params.to);
    if (to.dir === this.#paths.dir) throw new ProtocolError('params.to: the VM is already there');
    await ensurePrivateDir(to.dir);
    checkSocketPath(to);
    if (await exists(to.stateFile))
      throw new ProtocolError(`params.to: ${to.dir} already holds a VM (${to.stateFile})`);
    if (this.#paused !== undefined)
      throw new PostcopyStateError(
        `a post-copy migration to ${this.#paused.to.dir} is paused: recover it first (qmpkit vm postcopy recover)`,
        'postcopy-paused',
        'postcopy-active',
      );
    await claimSocket(to);
    const started = performance.now();
    const transport: MigrationTransport = { type: params.transport ?? 'unix' };
    const attempts = params.recoverAttempts ?? 3;
    const live: PostcopyRun = { to, transport, target: undefined };
    const run = migrate(
      this.#machine,
      {
        runDir: to.runDir,
        stateFile: to.stateFile,
        // Beside the run dir, so the copied images outlive the QEMU process.
        diskDir: path.join(to.dir, 'disks'),
        ...(params.qemu !== undefined ? { qemu: params.qemu } : {}),
      },
      {
        signal,
        transport,
        // One directory for both ends here (both QEMUs run on this host): the target's
        // server certificate and the source's client certificate, for RAM and NBD alike.
        ...(params.tlsDir !== undefined ? { tls: { dir: params.tlsDir } } : {}),
        ...(params.postcopy !== undefined ? { postcopy: params.postcopy } : {}),
        ...bandwidths(params),
        postcopyRecovery: attempts > 0 ? { attempts } : false,
        ...(params.disks !== undefined ? { disks: params.disks } : {}),
        ...(params.transport === 'tcp' ? { nbd: { type: 'tcp' as const } } : {}),
        logger: { warn: (message) => this.#log(message) },
        convergence: {
          onDecision: (d) => this.#log(`migrate: convergence ${d.action}: ${d.reason}`),
        },
        onPhase: (_phase, context) => {
          live.target ??= context.target;
        },
      },
    );
    this.#live = { post: live, run, recovers: attempts > 0 };
    const forwarding = (async () => {
      for await (const p of run.progress) {
        const line: MigrateProgressLine = {
          phase: p.phase,
          bytes: p.transferred,
          totalBytes: p.total > 0 ? p.total : undefined,
          percent:
            p.total > 0 ? Math.min(100, (100 * (p.total - p.remaining)) / p.total) : undefined,
          elapsedMs: p.elapsedMs,
          remaining: p.remaining,
          dirtyRate: p.dirtyRate,
          throughput: p.throughput,
          iterations: p.iterations,
          expectedDowntimeMs: p.expectedDowntimeMs,
          ...(p.recovery !== undefined ? { recovery: p.recovery } : {}),
          ...(p.disks !== undefined ? { disks: p.disks } : {}),
        };
        connection.send({ id, progress: line });
      }
    })();
    let result: Awaited<typeof run.result>;
    try {
      result = await run.result.finally(() => forwarding);
    } catch (error) {
      // Both QEMUs stay (the target holds the guest): kept for `postcopy-recover` and `stop`.
      if (isLiveMigrationError(error) && error.reason === 'postcopy-paused' && live.target) {
        this.#paused = { ...live, target: live.target };
        this.#log(
          `migrate: post-copy paused; the target ${to.dir} (QEMU pid ${live.target.pid}) holds the guest, this source the pages not yet sent; qmpkit vm postcopy recover --dir ${this.#paths.dir} resumes it`,
        );
      }
      throw error;
    } finally {
      this.#live = undefined;
    }
    const old = this.#paths;
    await this.#moveTo(result.machine, to);
    this.#log(
      `migrated to ${to.dir}: QEMU pid ${result.machine.pid}, downtime ${result.downtimeMs ?? '?'} ms; control socket ${to.control} (this log stays in ${old.dir})`,
    );
    const v = result.machine.qemuVersion;
    return {
      dir: to.dir,
      totalMs: Math.round(performance.now() - started),
      downtimeMs: result.downtimeMs,
      qemuDowntimeMs: result.qemuDowntimeMs,
      bytes: result.lastProgress?.transferred ?? 0,
      qemu: { pid: result.machine.pid, version: `${v.major}.${v.minor}.${v.micro}` },
      postcopy: result.postcopy,
      decisions: result.decisions.map((d) => `${d.action}: ${d.reason}`),
    };
  }

  /** From now on the VM is `moved` in `to`: control socket and snapshot store move there. */
  async #moveTo(moved: Machine, to: VmPaths): Promise<void> {
    const old = this.#paths;
    this.#machine = moved;
    this.#paths = to;
    this.#snapshots = await openSnapshots(moved, {
      dir: to.snapshots,
      strategy: this.#snapshots.kind,
    });
    const oldServer = this.#server;
    this.#server = await this.#listen(to);
    oldServer?.close();
    await rm(old.control, { force: true });
  }

  /**
   * `postcopy-pause`: cuts the stream of the `migrate` under way (`migrate-pause` on the source)
   * once post-copy is active and the target runs the guest. A cut while the target still loads
   * the device state would lose the guest, so a switch in progress is waited for (bounded).
   */
  async #postcopyPause(): Promise<Methods['postcopy-pause']['result']> {
    const live = this.#live;
    if (live === undefined) {
      if (this.#paused !== undefined)
        throw new PostcopyStateError(
          `the post-copy migration to ${this.#paused.to.dir} is already paused; resume it with qmpkit vm postcopy recover`,
          'postcopy-paused',
          'postcopy-active',
        );
      throw new PostcopyStateError(
        `no migration of this VM to a VM directory is under way (its QEMU reports '${await this.#migrationStatus()}')`,
        await this.#migrationStatus(),
        'postcopy-active',
      );
    }
    const status = await this.#migrationStatus();
    const target = live.post.target;
    if (status !== 'postcopy-active' || target === undefined)
      throw new PostcopyStateError(
        `the migration to ${live.post.to.dir} is in '${status}', not in post-copy: only a post-copy stream can be paused (cancel a pre-copy one with Ctrl-C on vm migrate)`,
        status,
        'postcopy-active',
      );
    await untilTargetRuns(target, 60_000);
    await live.run.pausePostcopy();
    this.#log(
      `postcopy-pause: the stream to ${live.post.to.dir} was cut (${live.recovers ? 'the migration recovers on its own' : 'resume with postcopy-recover'})`,
    );
    return { to: live.post.to.dir, recovers: live.recovers };
  }

  /**
   * `postcopy-recover`: resumes the paused post-copy migration (`recoverPostcopy`: the target
   * listens anew, the source resumes into it and sends the rest); then the VM is the target and
   * this supervisor serves it from there, as after a `migrate`.
   */
  async #postcopyRecover(
    paused: PostcopyRun & { target: Machine },
    params: PostcopyRecoverParams,
  ): Promise<Methods['postcopy-recover']['result']> {
    const source = this.#machine;
    const started = performance.now();
    if (params.postcopyBandwidth !== undefined)
      await source.qmp.execute('migrate-set-parameters', {
        'max-postcopy-bandwidth': params.postcopyBandwidth,
      });
    const listen = params.listen !== undefined ? listenTransport(params.listen) : undefined;
    try {
      const result = await recoverPostcopy(source, paused.target, {
        transport: paused.transport,
        ...(listen !== undefined ? { listen: () => listen } : {}),
        ...(params.attempts !== undefined ? { attempts: params.attempts } : {}),
      });
      this.#paused = undefined;
      const old = this.#paths;
      await this.#moveTo(result.machine, paused.to);
      this.#log(
        `postcopy-recover: resumed after ${result.attempts} attempt(s); the VM runs in ${paused.to.dir} (QEMU pid ${result.machine.pid}; this log stays in ${old.dir})`,
      );
      const v = result.machine.qemuVersion;
      return {
        dir: paused.to.dir,
        totalMs: Math.round(performance.now() - started),
        downtimeMs: null,
        qemuDowntimeMs: null,
        bytes: 0,
        qemu: { pid: result.machine.pid, version: `${v.major}.${v.minor}.${v.micro}` },
        postcopy: true,
        decisions: [],
      };
    } catch (error) {
      // A QEMU that went away took the guest with it: nothing is left to recover.
      if (source.status !== 'running' || paused.target.status !== 'running') {
        this.#paused = undefined;
        // Without the source's pages the target's guest cannot go on; how its stop went is
        // only for the log (the QEMU is ended either way).
        if (paused.target.status === 'running')
          await paused.target
            .stop()
            .catch((e: unknown) => this.#log(`stopping the target: ${String(e)}`));
      }
      throw error;
    }
  }

  /** The paused post-copy `postcopy-recover` resumes, or a `PostcopyStateError`. */
  async #pausedPostcopy(): Promise<PostcopyRun & { target: Machine }> {
    const paused = this.#paused;
    if (paused !== undefined) return paused;
    const status = await this.#migrationStatus();
    throw new PostcopyStateError(
      this.#live !== undefined
        ? `the migration to ${this.#live.post.to.dir} is still under way ('${status}'); only one that ended in postcopy-paused is resumed here`
        : `no post-copy migration of this VM is paused (its QEMU reports '${status}')`,
      status,
      'postcopy-paused',
    );
  }

  /** The source QEMU's migration status (`none` without one, `gone` when QEMU is). */
  async #migrationStatus(): Promise<string> {
    if (this.#machine.status !== 'running') return 'gone';
    return (await this.#machine.qmp.execute('query-migrate')).status ?? 'none';
  }

  /**
   * Live-migrates the VM to a QEMU listening at `params.to` (`qmpkit vm receive` elsewhere) with
   * `@qmpkit/machine`'s `migrateTo`: success is the source's own `completed` with return-path
   * (the receiver confirms that the guest runs). Then the VM lives there and this supervisor
   * ends; the state file says the VM left.
   */
  async #migrateTo(
    connection: Connection,
    id: number,
    params: MigrateParams,
    signal: AbortSignal,
  ): Promise<Methods['migrate']['result']> {
    const started = performance.now();
    const run = migrateTo(this.#machine, params.to, {
      signal,
      logger: { warn: (message) => this.#log(message) },
      ...(params.tlsDir !== undefined ? { tls: { dir: params.tlsDir } } : {}),
      ...(params.postcopy !== undefined ? { postcopy: params.postcopy } : {}),
      ...bandwidths(params),
      ...(params.disks !== undefined ? { disks: params.disks } : {}),
      convergence: {
        onDecision: (d) => this.#log(`migrate: convergence ${d.action}: ${d.reason}`),
      },
    });
    const forwarding = (async () => {
      for await (const p of run.progress) connection.send({ id, progress: progressLine(p) });
    })();
    const result = await run.result.finally(() => forwarding);
    this.#log(
      `migrated to ${params.to}${result.postcopy ? ' (post-copy)' : ''}: the VM runs there now; this supervisor ends`,
    );
    // Answer first, then end: QEMU has already quit.
    setImmediate(() => void this.#stop());
    return {
      dir: params.to,
      totalMs: Math.round(performance.now() - started),
      downtimeMs: null,
      qemuDowntimeMs: result.qemuDowntimeMs,
      bytes: result.lastProgress?.transferred ?? 0,
      qemu: null,
      postcopy: result.postcopy,
      decisions: result.decisions.map((d) => `${d.action}: ${d.reason}`),
    };
  }

  /** Aborts what runs, stops QEMU, and ends `serve` (once; later calls share the result). */
  #stop(): Promise<Methods['stop']['result']> {
    this.#stopping ??= (async () => {
      const busy = this.#busy;
      if (busy !== undefined) {
        this.#log(`stopping: aborting the ${busy.method} of '${busy.name}'`);
        busy.controller.abort(new Error('the VM is stopping'));
        await busy.done.catch(() => undefined);
      }
      const exit =
        this.#machine.status === 'exited'
          ? await this.#machine.exited
          : await this.#machine.stop().catch(() => this.#machine.exited);
      // A paused post-copy's target goes with the source (neither is the VM without the other).
      const paused = this.#paused;
      if (paused !== undefined) {
        this.#paused = undefined;
        this.#log(`stopping: the paused post-copy's target in ${paused.to.dir} ends too`);
        await paused.target.stop().catch(() => paused.target.exited);
      }
      // Answer `stop` before the socket goes away.
      setImmediate(() => this.#onStopped(exit));
      return exit;
    })();
    return this.#stopping.then((exit) => ({ code: exit.code, signal: exit.signal }));
  }
}

function blockParams(params: Record<string, unknown>): BlockParams {
  if (params.op !== 'commit' && params.op !== 'stream' && params.op !== 'mirror')
    throw new ProtocolError("params.op: 'commit', 'stream' or 'mirror'");
  const out: { -readonly [K in keyof BlockParams]: BlockParams[K] } = { op: params.op };
  for (const key of ['disk', 'top', 'base', 'target'] as const) {
    const value = params[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value === '')
      throw new ProtocolError(`params.${key}: a non-empty string`);
    out[key] = value;
  }
  if (out.target !== undefined && !path.isAbsolute(out.target))
    throw new ProtocolError('params.target: the new image, an absolute path');
  if (params.speed !== undefined) {
    if (typeof params.speed !== 'number' || !(params.speed >= 0))
      throw new ProtocolError('params.speed: bytes per second (a number ≥ 0)');
    out.speed = params.speed;
  }
  return out;
}

function backupParams(params: Record<string, unknown>): BackupParams {
  if (params.kind !== 'full' && params.kind !== 'incremental')
    throw new ProtocolError("params.kind: 'full' or 'incremental'");
  if (typeof params.to !== 'string' || !path.isAbsolute(params.to))
    throw new ProtocolError('params.to: the backup directory, an absolute path');
  if (params.ifBroken !== undefined && params.ifBroken !== 'refuse' && params.ifBroken !== 'full')
    throw new ProtocolError("params.ifBroken: 'refuse' or 'full'");
  const disks = params.disks;
  if (disks !== undefined && !(Array.isArray(disks) && disks.every((d) => typeof d === 'string')))
    throw new ProtocolError('params.disks: device ids (strings)');
  if (params.pull !== undefined && typeof params.pull !== 'boolean')
    throw new ProtocolError('params.pull: a boolean');
  const speed = params.speed;
  if (speed !== undefined && !(typeof speed === 'number' && Number.isInteger(speed) && speed > 0))
    throw new ProtocolError('params.speed: bytes per second (a positive integer)');
  const tcp = params.tcp === undefined ? undefined : tcpParam(params.tcp, params.pull === true);
  return {
    ...(speed !== undefined ? { speed } : {}),
    ...(tcp !== undefined ? { tcp } : {}),
    kind: params.kind,
    to: params.to,
    ...(params.pull === true ? { pull: true } : {}),
    ...(params.ifBroken !== undefined ? { ifBroken: params.ifBroken } : {}),
    ...(disks !== undefined ? { disks: disks as string[] } : {}),
  };
}

/** `params.tcp` of a pull backup, checked field by field (the library checks the values). */
function tcpParam(value: unknown, pull: boolean): NonNullable<BackupParams['tcp']> {
  const fail = (what: string): never => {
    throw new ProtocolError(`params.tcp${what}`);
  };
  if (!pull) fail(': only with params.pull');
  if (typeof value !== 'object' || value === null) return fail(': an object');
  const t = value as Record<string, unknown>;
  if (typeof t.port !== 'number' || !Number.isInteger(t.port)) fail('.port: an integer');
  if (t.host !== undefined && typeof t.host !== 'string') fail('.host: a string');
  for (const key of ['allowRemote', 'allowPlaintext'] as const)
    if (t[key] !== undefined && typeof t[key] !== 'boolean') fail(`.${key}: a boolean`);
  let tls: { dir: string; hostname?: string } | undefined;
  if (t.tls !== undefined) {
    const l = (
      typeof t.tls === 'object' && t.tls !== null ? t.tls : fail('.tls: an object')
    ) as Record<string, unknown>;
    if (typeof l.dir !== 'string' || !path.isAbsolute(l.dir))
      return fail('.tls.dir: an absolute path');
    if (l.hostname !== undefined && typeof l.hostname !== 'string') fail('.tls.hostname: a string');
    tls = { dir: l.dir, ...(typeof l.hostname === 'string' ? { hostname: l.hostname } : {}) };
  }
  return {
    port: t.port as number,
    ...(typeof t.host === 'string' ? { host: t.host } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...(t.allowRemote === true ? { allowRemote: true } : {}),
    ...(t.allowPlaintext === true ? { allowPlaintext: true } : {}),
  };
}

function nameParam(params: Record<string, unknown>): { name: string } {
  if (typeof params.name !== 'string' || params.name === '')
    throw new ProtocolError('params.name (a snapshot name) is required');
  return { name: params.name };
}

function loadParams(params: Record<string, unknown>): LoadParams {
  const { name } = nameParam(params);
  if (params.qemu !== undefined && (typeof params.qemu !== 'string' || params.qemu === ''))
    throw new ProtocolError('params.qemu: a QEMU binary (path, name or release)');
  if (params.force !== undefined && typeof params.force !== 'boolean')
    throw new ProtocolError('params.force: a boolean');
  return {
    name,
    ...(typeof params.qemu === 'string' ? { qemu: params.qemu } : {}),
    ...(params.force === true ? { force: true } : {}),
  };
}

function saveParams(params: Record<string, unknown>): SaveParams {
  const { name } = nameParam(params);
  const strategy = params.strategy;
  if (strategy !== undefined && !STRATEGIES.includes(strategy as StrategyKind))
    throw new ProtocolError(`params.strategy: one of ${STRATEGIES.join(', ')}`);
  for (const key of [
    'live',
    'overwrite',
    'portable',
    'diskOnly',
    'requireQuiesce',
    'sharedRam',
  ] as const)
    if (params[key] !== undefined && typeof params[key] !== 'boolean')
      throw new ProtocolError(`params.${key}: a boolean`);
  if (params.description !== undefined && typeof params.description !== 'string')
    throw new ProtocolError('params.description: a string');
  return {
    name,
    ...(strategy !== undefined ? { strategy: strategy as StrategyKind } : {}),
    ...(typeof params.live === 'boolean' ? { live: params.live } : {}),
    ...(typeof params.portable === 'boolean' ? { portable: params.portable } : {}),
    ...(typeof params.sharedRam === 'boolean' ? { sharedRam: params.sharedRam } : {}),
    ...(typeof params.diskOnly === 'boolean' ? { diskOnly: params.diskOnly } : {}),
    ...(typeof params.requireQuiesce === 'boolean'
      ? { requireQuiesce: params.requireQuiesce }
      : {}),
    ...(typeof params.overwrite === 'boolean' ? { overwrite: params.overwrite } : {}),
    ...(typeof params.description === 'string' ? { description: params.description } : {}),
  };
}

/** `tcp:…` or `unix:…`: a migration address rather than a VM directory. */
function isAddress(to: string): boolean {
  return /^(tcp|unix):/.test(to);
}

function progressLine(p: MigrationProgress): MigrateProgressLine {
  return {
    phase: p.phase,
    bytes: p.transferred,
    totalBytes: p.total > 0 ? p.total : undefined,
    percent: p.total > 0 ? Math.min(100, (100 * (p.total - p.remaining)) / p.total) : undefined,
    elapsedMs: p.elapsedMs,
    remaining: p.remaining,
    dirtyRate: p.dirtyRate,
    throughput: p.throughput,
    iterations: p.iterations,
    expectedDowntimeMs: p.expectedDowntimeMs,
    ...(p.disks !== undefined ? { disks: p.disks } : {}),
  };
}

function migrateParams(params: Record<string, unknown>): MigrateParams {
  if (typeof params.to !== 'string' || params.to === '')
    throw new ProtocolError('params.to (the VM directory to migrate to) is required');
  if (params.qemu !== undefined && typeof params.qemu !== 'string')
    throw new ProtocolError('params.qemu: a QEMU binary (path, name or release)');
  if (params.transport !== undefined && params.transport !== 'unix' && params.transport !== 'tcp')
    throw new ProtocolError('params.transport: "unix" or "tcp"');
  if (
    params.tlsDir !== undefined &&
    (typeof params.tlsDir !== 'string' || !path.isAbsolute(params.tlsDir))
  )
    throw new ProtocolError('params.tlsDir: the TLS credentials directory, an absolute path');
  if (
    params.postcopy !== undefined &&
    typeof params.postcopy !== 'boolean' &&
    params.postcopy !== 'immediate'
  )
    throw new ProtocolError('params.postcopy: a boolean or "immediate"');
  if (params.disks !== undefined && params.disks !== 'copy' && params.disks !== 'shared')
    throw new ProtocolError('params.disks: "copy" or "shared"');
  const maxBandwidth = bytesParam(params, 'maxBandwidth', 1);
  const postcopyBandwidth = bytesParam(params, 'postcopyBandwidth', 0);
  const recoverAttempts = bytesParam(params, 'recoverAttempts', 0);
  return {
    to: params.to,
    ...(typeof params.tlsDir === 'string' ? { tlsDir: params.tlsDir } : {}),
    ...(params.postcopy === true || params.postcopy === 'immediate'
      ? { postcopy: params.postcopy }
      : {}),
    ...(maxBandwidth !== undefined ? { maxBandwidth } : {}),
    ...(postcopyBandwidth !== undefined ? { postcopyBandwidth } : {}),
    ...(recoverAttempts !== undefined ? { recoverAttempts } : {}),
    ...(typeof params.qemu === 'string' ? { qemu: params.qemu } : {}),
    ...(params.transport === 'unix' || params.transport === 'tcp'
      ? { transport: params.transport }
      : {}),
    ...(params.disks === 'copy' || params.disks === 'shared' ? { disks: params.disks } : {}),
  };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** An integer param ≥ `min` (bytes/s, a count), or undefined when absent. */
function bytesParam(params: Record<string, unknown>, key: string, min: number): number | undefined {
  const value = params[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new ProtocolError(`params.${key}: an integer ≥ ${min}`);
  return value;
}

/** The migration's bandwidth options from `migrate` params. */
function bandwidths(params: MigrateParams) {
  return {
    ...(params.maxBandwidth !== undefined ? { maxBandwidth: params.maxBandwidth } : {}),
    ...(params.postcopyBandwidth !== undefined
      ? { parameters: { 'max-postcopy-bandwidth': params.postcopyBandwidth } }
      : {}),
  };
}

function recoverParams(params: Record<string, unknown>): PostcopyRecoverParams {
  if (
    params.listen !== undefined &&
    (typeof params.listen !== 'string' || !isAddress(params.listen))
  )
    throw new ProtocolError('params.listen: unix:PATH or tcp:HOST:PORT');
  const postcopyBandwidth = bytesParam(params, 'postcopyBandwidth', 0);
  const attempts = bytesParam(params, 'attempts', 1);
  if (typeof params.listen === 'string') listenTransport(params.listen);
  return {
    ...(typeof params.listen === 'string' ? { listen: params.listen } : {}),
    ...(postcopyBandwidth !== undefined ? { postcopyBandwidth } : {}),
    ...(attempts !== undefined ? { attempts } : {}),
  };
}

/** `unix:PATH` or `tcp:HOST:PORT` (IPv6 hosts in brackets) as a migration transport. */
function listenTransport(address: string): MigrationTransport {
  if (address.startsWith('unix:')) {
    const socket = address.slice('unix:'.length);
    if (!path.isAbsolute(socket))
      throw new ProtocolError('params.listen: unix: needs an absolute path');
    return { type: 'unix', path: socket };
  }
  const tcp = (() => {
    try {
      return parseMigrationAddress(address);
    } catch {
      return undefined;
    }
  })();
  if (tcp?.type !== 'tcp')
    throw new ProtocolError('params.listen: tcp:HOST:PORT (port 0: any free one)');
  return tcp;
}

/**
 * Waits until `target` runs the guest after the switch (its run state leaves `inmigrate`: the
 * device state is loaded), re-checked on each run-state event; a `PostcopyStateError` after
 * `timeout` ms or when the target exits.
 */
async function untilTargetRuns(target: Machine, timeout: number): Promise<void> {
  let wake: () => void = () => {};
  const offs = [target.qmp.on('RESUME', () => wake()), target.qmp.on('STOP', () => wake())];
  const deadline = performance.now() + timeout;
  try {
    for (;;) {
      const next = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const state =
        target.status === 'running' ? (await target.qmp.execute('query-status')).status : 'gone';
      if (state !== 'inmigrate' && state !== 'gone') return;
      if (state === 'gone' || performance.now() >= deadline)
        throw new PostcopyStateError(
          `the target did not take over the guest (${state === 'gone' ? 'its QEMU exited' : `still '${state}' after ${timeout} ms`}); the stream was not cut`,
          'postcopy-active',
          'postcopy-active',
        );
      await next;
    }
  } finally {
    for (const off of offs) off();
  }
}
