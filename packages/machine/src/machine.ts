/**
 * A QEMU virtual machine: the process, its QMP session, its consoles and its configuration
 * model, kept in step with each other and with a state file.
 *
 * - QEMU is spawned with an argument array (never a shell). QMP and the consoles are
 *   socketpairs QEMU inherits (`@qmpkit/transport/fd`): no socket file, no connect race.
 *   Ready means: greeting received and capabilities negotiated.
 * - The configuration is a `@qmpkit/devices` `VmConfig`; hot-plug goes through the model's
 *   steps so the model, the VM and the state file agree; QMP events (DEVICE_DELETED,
 *   DEVICE_TRAY_MOVED, BLOCK_JOB_COMPLETED) update the model too.
 * - The state file (`qmpkit-machine/state` v1) is rewritten atomically on every change;
 *   `Machine.relaunch(file)` starts the VM again after a crash of QEMU or of this process.
 */
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  type AccelConfig,
  assertValid,
  type BlockNode,
  type ConfigParts,
  type ConfigSelection,
  type PlugStep,
  plug as planPlug,
  unplug as planUnplug,
  reconcileBlockGraph,
  type UnplugOptions,
  type UnplugStep,
  undoPlug,
  type VmConfig,
  validate,
} from '@qmpkit/devices';
import type { Logger, ValidateMode } from '@qmpkit/transport';
import { usableAccelerators } from './accel.js';
import { type QemuBinary, qemuBinaryArgs, qemuBinaryEnv } from './binary.js';
import type { ConsoleState } from './console.js';
import { Console, type ConsoleEncoding, type ConsoleSpec } from './console.js';
import {
  LiveMigrationError,
  MachineNotRunningError,
  MachineOptionsError,
  MachinePlugError,
  QemuBinaryError,
} from './errors.js';
import { binaryFromSpec, binaryFromState, type QemuSpec, storedBinary } from './launch-binary.js';
import { acquireRunDirLock, type RunDirLock } from './lock.js';
import { machineTypes, pinFromQueryMachines, resolveMachineType } from './machine-type.js';
import {
  DEFAULT_QMP_CHARDEV,
  dummyConsoleFds,
  type ExitInfo,
  type InheritedFileInfo,
  type MachineQmp,
  type Proc,
  type ProcessOptions,
  planProcess,
  type Settings,
  startProcess,
  within,
} from './process.js';
import { repairLeaks } from './qemu-img.js';
import { prepareRunDir } from './rundir.js';
import {
  backupPath,
  type MachineStatus,
  MIGRATION_PHASES,
  type MigrationRecord,
  type QemuVersion,
  type RuntimeFacts,
  readState,
  type StoredBinary,
  type StoredConsole,
  type StoredLaunch,
  stateDocument,
  writeState,
} from './state.js';
import { endRunDirQemus, type QemuRole, removeWriteTemps } from './tracking.js';

export type { QemuSpec } from './launch-binary.js';
export type {
  ExitInfo,
  InheritedFileInfo,
  InheritFile,
  MachineQmp,
  ProcessOptions,
} from './process.js';
export { DEFAULT_QMP_CHARDEV } from './process.js';

export interface LaunchOptions extends ProcessOptions {
  /**
   * The QEMU to run: a `QemuBinary` (`resolveQemuBinary`), a path, a release fetched into the
   * cache (`'10.0'`) or a name on `PATH` (default `qemu-system-x86_64`). It is checked with
   * `--version` before anything is created (`QemuBinaryError`; a missing one is a
   * `QemuLaunchError` `not-found`) and recorded in the state file.
   */
  readonly qemu?: QemuSpec;
  /** Where a release name in `qemu` is looked up (default `defaultCacheDir()`, as `qmpkit qemu fetch`). */
  readonly cacheDir?: string;
  /** Use this run directory (created 0700 if missing; an existing one must be 0700 and ours). */
  readonly runDir?: string;
  /** Otherwise create `qmpkit-machine-XXXXXX` here (default `os.tmpdir()`); removed by `stop()`. */
  readonly runDirParent?: string;
  /** The state file (default `<runDir>/state.json`); `false` for none. */
  readonly stateFile?: string | false;
  /** Chardev ids to connect to Node (their backend is replaced by an inherited socketpair). */
  readonly consoles?: readonly ConsoleSpec[];
  /**
   * `argv` (default): everything on the command line. `qmp`: start with `-S`, only what
   * cannot be hot-plugged on the command line (see `assemblyPlan`), add the rest with QMP,
   * then `cont`.
   */
  readonly assemble?: 'argv' | 'qmp';
  /** Accelerators when the configuration names none (default `['kvm', 'tcg']`: KVM, else TCG). */
  readonly accel?: readonly AccelConfig[];
  /** Milliseconds from spawn to a negotiated QMP session (default 30 000); QEMU is then killed. */
  readonly launchTimeout?: number;
  /** Arguments after the configuration's (stored, reused by `restart` and `relaunch`). */
  readonly extraArgs?: readonly string[];
  /** Bytes of QEMU's stderr (and stdout) kept for errors and `stderr()` (default 64 KiB). */
  readonly stderrBytes?: number;
  /** Unread characters kept per console (default 1 Mi); older ones are dropped. */
  readonly consoleCapacity?: number;
  /** QEMU's environment (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** QMP argument/reply validation against the 7.2 tables (default `off`). */
  readonly validate?: ValidateMode;
  /** Where warnings go (state writes that failed after a change, model updates refused). */
  readonly logger?: Logger;
}

export interface StopOptions {
  /** Milliseconds to wait for QEMU to exit after `quit` (default 10 000), then SIGTERM. */
  readonly quitTimeout?: number;
  /** Milliseconds to wait after SIGTERM (default 5 000), then SIGKILL. */
  readonly termTimeout?: number;
}

export interface RestartOptions extends ProcessOptions, StopOptions {
  /** Keep the consoles' unread text (default: cleared, a fresh QEMU prints afresh). */
  readonly keepConsoleBuffers?: boolean;
  /**
   * Run the new process on this QEMU (e.g. a newer release), recorded in the state file for
   * every later one. It is checked before the running QEMU is touched: `QemuBinaryError` for
   * one that is not QEMU or lacks its module dir, `QemuLaunchError` `not-found`, and
   * `MachineTypeError` when it lacks the pinned machine type.
   */
  readonly qemu?: QemuSpec;
  /** Where a release name in `qemu` is looked up (default `defaultCacheDir()`). */
  readonly cacheDir?: string;
}

export interface RelaunchOptions extends ProcessOptions {
  /**
   * Run on this QEMU instead of the one the state file names (e.g. a newer release). The VM
   * keeps its pinned machine type; a binary without that type is a `MachineTypeError`.
   */
  readonly qemu?: QemuSpec;
  /** Where a release name in `qemu` is looked up (default `defaultCacheDir()`). */
  readonly cacheDir?: string;
  /**
   * Take the run directory over even when another live process holds its lock (by default
   * that is a `RunDirLockedError`: the VM is someone's, not a leftover); its QEMU is killed.
   */
  readonly force?: boolean;
  /**
   * `qemu-img` for reclaiming leaked clusters of the VM's writable qcow2 images after an
   * unclean end (default `qemu-img` on `PATH`).
   */
  readonly qemuImg?: string;
  /**
   * Start from `<file>.bak` (the previous good version) when `<file>` is corrupt; the corrupt
   * file is kept beside it as `<file>.corrupt-<time>`.
   */
  readonly useBackup?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly validate?: ValidateMode;
  readonly logger?: Logger;
  readonly stderrBytes?: number;
  readonly consoleCapacity?: number;
}

export interface HotplugOptions {
  /** Milliseconds to wait for each `DEVICE_DELETED` (default 30 000). */
  readonly deviceDeletedTimeout?: number;
}

export interface MachinePlugResult {
  /** The new configuration (also `machine.config`). */
  readonly config: VmConfig;
  /** The QMP commands that ran. */
  readonly steps: readonly PlugStep[];
}

export interface MachineUnplugResult {
  readonly config: VmConfig;
  readonly steps: readonly UnplugStep[];
  /** Everything removed, including what `cascade` added. */
  readonly removed: Required<ConfigSelection>;
}

const DEFAULT_ACCEL: readonly AccelConfig[] = ['kvm', 'tcg'];

function normalizeConsoles(specs: readonly ConsoleSpec[]): StoredConsole[] {
  return specs.map((spec) =>
    typeof spec === 'string'
      ? { chardev: spec, encoding: 'utf8' as ConsoleEncoding }
      : { chardev: spec.chardev, encoding: spec.encoding ?? 'utf8' },
  );
}

/** The stored model: the configuration with the defaults the launch filled in. */
function modelConfig(config: VmConfig, accel: readonly AccelConfig[]): VmConfig {
  const { incoming: _incoming, ...rest } = config;
  return {
    ...rest,
    accel: config.accel ?? accel,
    qmp: config.qmp ?? { chardev: DEFAULT_QMP_CHARDEV },
  };
}

function settingsFrom(options: RelaunchOptions): Settings {
  return {
    env: options.env ?? process.env,
    validate: options.validate ?? 'off',
    logger: options.logger ?? {
      warn: (message, detail) => console.warn(`[qmpkit/machine] ${message}`, detail ?? ''),
    },
    stderrBytes: options.stderrBytes ?? 64 * 1024,
    consoleCapacity: options.consoleCapacity ?? 1024 * 1024,
  };
}

/** The device id in `query-block`'s `qdev`: a QOM path, or (e.g. for `ide-cd`) the id itself. */
function qdevId(qdev: string): string | undefined {
  if (!qdev.startsWith('/')) return qdev === '' ? undefined : qdev;
  return /^\/machine\/peripheral\/([^/]+)/.exec(qdev)?.[1];
}

/** A running (or stopped) QEMU virtual machine. Create one with `launch` or `Machine.relaunch`. */
export class Machine {
  #config: VmConfig;
  #launch: StoredLaunch;
  #settings: Settings;
  readonly #runDir: string;
  readonly #ownsRunDir: boolean;
  readonly #stateFile: string | undefined;
  #binary: string;
  #proc: Proc;
  #status: MachineStatus = 'running';
  #trays: Record<string, 'open' | 'closed'> = {};
  readonly #consoles: Map<string, Console>;
  #writes: Promise<void> = Promise.resolve();
  readonly #expectedDeletions = new Set<string>();
  #lock: RunDirLock | undefined;
  #migration: MigrationRecord | undefined;

  private constructor(init: {
    config: VmConfig;
    launch: StoredLaunch;
    settings: Settings;
    runDir: string;
    ownsRunDir: boolean;
    stateFile: string | undefined;
    binary: string;
    proc: Proc;
    consoles: Map<string, Console>;
    lock: RunDirLock;
  }) {
    this.#config = init.config;
    this.#launch = init.launch;
    this.#settings = init.settings;
    this.#runDir = init.runDir;
    this.#ownsRunDir = init.ownsRunDir;
    this.#stateFile = init.stateFile;
    this.#binary = init.binary;
    this.#proc = init.proc;
    this.#consoles = init.consoles;
    this.#lock = init.lock;
    this.#watch(init.proc);
  }

  /**
   * Starts QEMU for `config` and resolves once QMP is ready (and, with `assemble: 'qmp'`,
   * the devices are plugged and the CPUs running). Validates before anything is spawned
   * (`ConfigValidationError`, `MachineOptionsError`); `RunDirError`; `QemuLaunchError`
   * with exit status, argv and stderr when QEMU does not come up.
   */
  static async launch(config: VmConfig, options: LaunchOptions = {}): Promise<Machine> {
    const spec = options.qemu ?? 'qemu-system-x86_64';
    const launch: StoredLaunch = {
      qemu: typeof spec === 'string' ? spec : spec.path,
      consoles: normalizeConsoles(options.consoles ?? []),
      assemble: options.assemble ?? 'argv',
      extraArgs: [...(options.extraArgs ?? [])],
      launchTimeout: options.launchTimeout ?? 30_000,
    };
    const settings = settingsFrom(options);
    const fds = { qmp: 3, consoles: dummyConsoleFds(launch) };
    // Everything that can be checked without side effects first (the accelerators do not
    // change what is valid; the probe below needs the resolved binary).
    const checked = planProcess(modelConfig(config, DEFAULT_ACCEL), launch, options, fds);
    const binary = await binaryFromSpec(
      spec,
      settings.env,
      (b) => [b, ...checked.args],
      options.cacheDir,
    );
    // Only what this host can run (no kvm+tcg fallback noise), asked of the QEMU that will
    // run — a release name is resolved to its executable and module dir first; a binary whose
    // probe fails probes as ['tcg'] and the launch below reports the binary's own error.
    const model = modelConfig(
      config,
      options.accel ??
        (config.accel
          ? DEFAULT_ACCEL
          : await usableAccelerators(binary.path, qemuBinaryEnv(binary, settings.env))),
    );
    const record = await storedBinary(binary);
    const runDir = await prepareRunDir({
      runDir: options.runDir,
      runDirParent: options.runDirParent,
    });
    const stateFile =
      options.stateFile === false
        ? undefined
        : path.resolve(options.stateFile ?? path.join(runDir.path, 'state.json'));
    let lock: RunDirLock | undefined;
    try {
      lock = await acquireRunDirLock(runDir.path);
      // A QEMU a crashed manager left in this run directory holds its images: it goes first.
      await endRunDirQemus(runDir.path, { logger: settings.logger });
      if (stateFile !== undefined) await removeWriteTemps(stateFile);
      return await Machine.#create(model, launch, settings, {
        runDir: runDir.path,
        ownsRunDir: runDir.temporary,
        stateFile,
        perProcess: options,
        lock,
        binary,
        record,
      });
    } catch (error) {
      await lock?.release();
      if (runDir.temporary) await rm(runDir.path, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * Starts the VM described by a state file again, e.g. after QEMU or this process was
   * killed: the stored configuration (with every hot-plug and event applied), consoles and
   * launch options. A QEMU of that state that still runs (same pid and start time) is
   * killed first, because it holds the disk locks and its monitor died with its parent.
   * Throws `StateFileError` for a corrupt or truncated file, and writes nothing then.
   */
  static async relaunch(file: string, options: RelaunchOptions = {}): Promise<Machine> {
    const stateFile = path.resolve(file);
    const state = await readState(options.useBackup ? backupPath(stateFile) : stateFile);
    const settings = settingsFrom(options);
    const undoMigration = migrationToUndo(state.runtime.migration);
    const planned = planProcess(state.config, state.launch, options, {
      qmp: 3,
      consoles: dummyConsoleFds(state.launch),
    });
    // The binary and the pinned machine type are checked before anything on disk changes.
    const argv = (b: string) => [b, ...planned.args];
    const binary =
      options.qemu !== undefined
        ? await binaryFromSpec(options.qemu, settings.env, argv, options.cacheDir)
        : state.launch.binary !== undefined
          ? await binaryFromState(state.launch.binary, settings.env, settings.logger)
          : await binaryFromSpec(state.launch.qemu, settings.env, argv, options.cacheDir);
    const record = await storedBinary(binary);
    if (state.launch.machineType !== undefined) {
      const types = await machineTypes(binary, settings.env, `${record.size}:${record.mtimeMs}`);
      resolveMachineType(state.launch.machineType, types, binary, true);
    }
    const launch: StoredLaunch =
      options.qemu === undefined
        ? state.launch
        : {
            ...state.launch,
            qemu: typeof options.qemu === 'string' ? options.qemu : options.qemu.path,
          };
    const runDir = await prepareRunDir({ runDir: state.runtime.runDir });
    const lock = await acquireRunDirLock(runDir.path, { force: options.force === true });
    try {
      const { pid, pidStartTime } = state.runtime;
      const ended = await endRunDirQemus(runDir.path, {
        logger: settings.logger,
        legacy:
          pid !== null && pidStartTime !== null ? { pid, startTime: pidStartTime } : undefined,
      });
      await removeWriteTemps(stateFile);
      // A migration cut short before the hand-over: the source is the VM, the target goes.
      if (undoMigration?.undo !== undefined)
        await removeMigrationTarget(undoMigration.undo, settings);
      // One cut short after it: this target is the VM, the source's QEMU goes (before this one
      // starts: with shared storage both would open the same images).
      if (undoMigration?.endSource !== undefined)
        await endMigrationSource(undoMigration.endSource.runDir, settings);
      if (state.runtime.status !== 'stopped' || ended.length > 0)
        await reclaimLeaks(state.config, options.qemuImg, settings);
      if (options.useBackup) {
        // Kept for inspection; when it cannot be moved, the relaunch overwrites it anyway.
        await rename(stateFile, `${stateFile}.corrupt-${Date.now()}`).catch(() => undefined);
      }
      return await Machine.#create(state.config, launch, settings, {
        runDir: runDir.path,
        ownsRunDir: state.runtime.ownsRunDir || runDir.temporary,
        stateFile,
        perProcess: options,
        lock,
        binary,
        record,
      });
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  static async #create(
    model: VmConfig,
    given: StoredLaunch,
    givenSettings: Settings,
    where: {
      runDir: string;
      ownsRunDir: boolean;
      stateFile: string | undefined;
      perProcess: ProcessOptions;
      lock: RunDirLock;
      binary: QemuBinary;
      record: StoredBinary;
    },
  ): Promise<Machine> {
    const binary = where.binary.path;
    let launch: StoredLaunch = { ...given, binary: where.record };
    // Every process of this machine runs with the binary's module dir and `-L` data dir.
    const settings: Settings = {
      ...givenSettings,
      env: qemuBinaryEnv(where.binary, givenSettings.env),
      qemuArgs: qemuBinaryArgs(where.binary),
    };
    if (where.stateFile !== undefined) {
      // Before the spawn: a crash from here on leaves a state file that relaunches (and ends
      // the half-started QEMU, which the journal and its pidfile argument identify).
      await writeState(
        where.stateFile,
        stateDocument(model, launch, {
          runDir: where.runDir,
          ownsRunDir: where.ownsRunDir,
          status: 'starting',
          pid: null,
          pidStartTime: null,
          parentPid: process.pid,
          qemuBinary: binary,
          qemuVersion: null,
          accel: null,
          exit: null,
          trays: {},
          updatedAt: new Date().toISOString(),
        }),
      );
    }
    const consoles = new Map<string, Console>();
    for (const c of launch.consoles)
      consoles.set(c.chardev, new Console(c.chardev, c.encoding, settings.consoleCapacity));
    for (const saved of where.perProcess.consoleState ?? [])
      consoles.get(saved.chardev)?.restore(saved.unread);
    const proc = await startProcess(
      binary,
      true,
      model,
      launch,
      settings,
      consoles,
      where.perProcess,
      { runDir: where.runDir, role: 'vm' },
    );
    if (launch.machineType === undefined)
      // First launch (or a state file from before pinning): record the versioned type the
      // configuration's one stands for on this binary, so every later process runs that.
      launch = await pinMachineType(proc, model, launch, settings);
    const machine = new Machine({
      config: model,
      launch,
      settings,
      runDir: where.runDir,
      ownsRunDir: where.ownsRunDir,
      stateFile: where.stateFile,
      binary,
      proc,
      consoles,
      lock: where.lock,
    });
    try {
      await machine.#persist();
    } catch (error) {
      await machine.kill();
      throw error;
    }
    return machine;
  }

  // ---- what it is ----------------------------------------------------------------------

  /** The current configuration model (what QEMU runs, as far as the model knows). */
  get config(): VmConfig {
    return this.#config;
  }
  /** The typed QMP client of the current QEMU process (a new one after `restart`). */
  get qmp(): MachineQmp {
    return this.#proc.qmp;
  }
  get pid(): number {
    return this.#proc.pid;
  }
  /** Resolves when the current QEMU process exits. */
  get exited(): Promise<ExitInfo> {
    return this.#proc.exited;
  }
  get status(): MachineStatus {
    return this.#status;
  }
  get runDir(): string {
    return this.#runDir;
  }
  get stateFile(): string | undefined {
    return this.#stateFile;
  }
  /** The full command of the current process, binary first. */
  get argv(): readonly string[] {
    return this.#proc.argv;
  }
  /** The versioned machine type the VM is pinned to (`pc` → `pc-i440fx-7.2`), if known. */
  get machineType(): string | undefined {
    return this.#launch.machineType;
  }
  /**
   * The launch options the VM was started with and every later process reuses (consoles,
   * extra arguments, assembly, binary, pinned machine type), as the state file stores them.
   */
  get launchRecord(): StoredLaunch {
    return this.#launch;
  }
  /** The live migration this machine takes part in, as its state file records it. */
  get migration(): MigrationRecord | undefined {
    return this.#migration;
  }
  /**
   * Records (or, with `undefined`, clears) a live migration's phase in the state file before
   * the step it names runs. Used by `migrate()`; a manager that restarts reads it on `relaunch`.
   */
  async recordMigration(record: MigrationRecord | undefined): Promise<void> {
    this.#migration = record;
    await this.#persist();
  }
  /** The QEMU binary the VM runs on, as the state file records it. */
  get qemuBinary(): StoredBinary | undefined {
    return this.#launch.binary;
  }
  /** The accelerator QEMU is using (`kvm`, or the fallback `tcg`). */
  get accel(): string {
    return this.#proc.accel;
  }
  get qemuVersion(): QemuVersion {
    return this.#proc.version;
  }
  /** Files the current process inherited (`inheritFiles`), with their `fd:N` URIs. */
  get inheritedFiles(): readonly InheritedFileInfo[] {
    return this.#proc.inherited;
  }
  /** Tray state of removable-media devices, as reported by `DEVICE_TRAY_MOVED`. */
  get trays(): Readonly<Record<string, 'open' | 'closed'>> {
    return { ...this.#trays };
  }
  /** The tail of QEMU's stderr (bounded by `stderrBytes`). */
  stderr(): string {
    return this.#proc.stderr.text();
  }
  /** The tail of QEMU's stdout. */
  stdout(): string {
    return this.#proc.stdout.text();
  }

  // ---- consoles ------------------------------------------------------------------------

  /** The console on chardev `chardev` (one of the `consoles` launch option). */
  console(chardev: string): Console {
    const console = this.#consoles.get(chardev);
    if (console === undefined)
      throw new MachineOptionsError(
        'consoles',
        `'${chardev}' is not a console of this machine (consoles: ${[...this.#consoles.keys()].join(', ') || 'none'})`,
      );
    return console;
  }

  /** The consoles' unread text, to save with a snapshot. */
  consoleState(): ConsoleState[] {
    return [...this.#consoles.values()].map((c) => c.state());
  }

  /**
   * Replaces the consoles' unread text (restoring a snapshot: output the guest printed
   * before the snapshot and nobody consumed must be seen again). Call it while the guest
   * is paused; consoles not listed keep their text.
   */
  restoreConsoleState(states: readonly ConsoleState[]): void {
    for (const s of states) this.console(s.chardev).restore(s.unread);
  }

  // ---- configuration changes -------------------------------------------------------------

  /**
   * Hot-plugs `parts` with the model's steps (dependency order). When a step fails, the
   * steps before it are undone (`undoPlug`) and `MachinePlugError` is thrown; the model is
   * unchanged. On success the model and the state file include the parts.
   */
  async plug(parts: ConfigParts, options: HotplugOptions = {}): Promise<MachinePlugResult> {
    const qmp = this.#running('plug');
    const { config, steps } = planPlug(this.#config, parts);
    const done: PlugStep[] = [];
    for (const step of steps) {
      try {
        await this.#runStep(qmp, step, options);
        done.push(step);
      } catch (cause) {
        const undoErrors: unknown[] = [];
        for (const undo of undoPlug(done)) {
          try {
            await this.#runStep(qmp, undo, options);
          } catch (error) {
            undoErrors.push(error);
          }
        }
        throw new MachinePlugError(
          'plug',
          step,
          { completed: done, rolledBack: undoErrors.length === 0, undoErrors },
          { cause },
        );
      }
    }
    this.#config = config;
    await this.#persist();
    return { config, steps };
  }

  /**
   * Unplugs the selected items (with `cascade`, default on, also what only they used).
   * `device_del` steps wait for `DEVICE_DELETED` (PCI removal needs the guest to answer).
   * When a step fails, the model keeps what is still there and `MachinePlugError` is thrown.
   */
  async unplug(
    selection: ConfigSelection,
    options: UnplugOptions & HotplugOptions = {},
  ): Promise<MachineUnplugResult> {
    const qmp = this.#running('unplug');
    const result = planUnplug(this.#config, selection, options);
    const done: UnplugStep[] = [];
    for (const step of result.steps) {
      try {
        await this.#runStep(qmp, step, options);
        done.push(step);
      } catch (cause) {
        this.#config = removeDone(this.#config, done);
        await this.#persist().catch((error: unknown) =>
          this.#settings.logger.warn('state file not written after a failed unplug', error),
        );
        throw new MachinePlugError(
          'unplug',
          step,
          { completed: done, rolledBack: false },
          { cause },
        );
      }
    }
    this.#config = result.config;
    await this.#persist();
    return { config: result.config, steps: result.steps, removed: result.removed };
  }

  /**
   * Records a configuration change the caller made in QEMU itself (e.g. an external
   * snapshot with `blockdev-snapshot`, see `insertOverlay`): validates `config`
   * (`ConfigValidationError`), makes it the model and writes the state file.
   */
  async adopt(config: VmConfig): Promise<void> {
    const model = modelConfig(config, this.#config.accel ?? DEFAULT_ACCEL);
    assertValid(model);
    planProcess(model, this.#launch, {}, { qmp: 3, consoles: dummyConsoleFds(this.#launch) });
    this.#config = model;
    await this.#persist();
  }

  /**
   * Re-reads which node each device uses (`query-block`) and each node's `file`/`backing`
   * child (`x-debug-query-block-graph`) and updates the model where QEMU differs, for nodes
   * and devices the model knows (a mirror that pivoted, a commit or stream that shortened a
   * chain). Runs by itself after `BLOCK_JOB_COMPLETED`. Returns whether the model changed.
   */
  async syncBlockGraph(): Promise<boolean> {
    const qmp = this.#running('syncBlockGraph');
    const model = this.#config;
    const devices = new Map<string, string>();
    for (const b of await qmp.execute('query-block')) {
      const id = qdevId(b.qdev ?? '');
      const top = b.inserted?.['node-name'];
      if (id !== undefined && top !== undefined && !devices.has(id)) devices.set(id, top);
    }
    let children: Map<string, Map<string, string>> | undefined;
    try {
      const graph = await qmp.execute('x-debug-query-block-graph');
      const byId = new Map(graph.nodes.map((n) => [n.id, n]));
      children = new Map();
      for (const n of graph.nodes)
        if (n.type === 'block-driver') children.set(n.name, new Map<string, string>());
      for (const edge of graph.edges) {
        const parent = byId.get(edge.parent);
        const child = byId.get(edge.child);
        if (parent?.type !== 'block-driver' || child?.type !== 'block-driver') continue;
        children.get(parent.name)?.set(edge.name, child.name);
      }
    } catch (error) {
      this.#settings.logger.warn('x-debug-query-block-graph failed; node edges not synced', error);
    }
    const { config: candidate, changed } = reconcileBlockGraph(model, {
      devices,
      ...(children !== undefined ? { children } : {}),
    });
    if (!changed) return false;
    const problems = validate(candidate);
    if (problems.length > 0) {
      this.#settings.logger.warn(
        'the block graph QEMU reports does not make a valid model; model left as it was',
        problems,
      );
      return false;
    }
    this.#config = candidate;
    await this.#persist();
    return true;
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Ends (SIGKILL) every QEMU of this machine's run directory except its own current one, and
   * returns their pids. This machine holds the run directory's lock, so such a process is a
   * leftover nobody drives (e.g. of a manager killed in the middle of a restart); anything
   * that deletes image files it does not know (the snapshot store's debris clean-up) calls
   * this first, so it never deletes a file a live QEMU still has open.
   */
  async endStrayQemus(): Promise<number[]> {
    const ended = await endRunDirQemus(this.#runDir, {
      logger: this.#settings.logger,
      ...(this.#proc.exit === undefined ? { keep: this.#proc.pid } : {}),
    });
    return ended.map((e) => e.pid);
  }

  /**
   * Ends QEMU: `quit`, then SIGTERM, then SIGKILL, each after its deadline. Removes the run
   * directory when the machine created it; otherwise the state file says `stopped`.
   */
  async stop(options: StopOptions = {}): Promise<ExitInfo> {
    const exit = await this.#end(this.#proc, options);
    await this.#finish(exit);
    return exit;
  }

  /** SIGKILL, no questions asked. Otherwise like `stop`. */
  async kill(): Promise<ExitInfo> {
    const proc = this.#proc;
    proc.ending = true;
    if (proc.exit === undefined) proc.child.kill('SIGKILL');
    const exit = await proc.exited;
    // QEMU has exited (the exit is the outcome); a failure to close our end of its gone socket says
    // nothing more.
    await proc.qmp.close().catch(() => {});
    await this.#finish(exit);
    return exit;
  }

  /**
   * Stops QEMU (like `stop`) and starts it again with `config` (default: the current model)
   * and the stored launch options; the run directory, state file and console objects stay.
   * `incoming: true` starts with `-incoming defer` and `inheritFiles` hands files over as
   * fds, which is how an external snapshot is restored (`migrate-incoming uri=fd:N`). The
   * new configuration is validated before the running QEMU is touched.
   */
  async restart(
    config: VmConfig = this.#config,
    options: RestartOptions = {},
  ): Promise<readonly InheritedFileInfo[]> {
    const model = modelConfig(config, this.#config.accel ?? DEFAULT_ACCEL);
    // The pin stands for the configured type; a configuration that names another type is
    // a deliberate change of machine type, pinned anew once the new process runs.
    const repin = model.machine.type !== this.#config.machine.type;
    let launch: StoredLaunch = repin ? withoutPin(this.#launch) : this.#launch;
    const planned = planProcess(model, launch, options, {
      qmp: 3,
      consoles: dummyConsoleFds(this.#launch),
    });
    // Another binary: resolved and checked (machine type included) before anything ends.
    let switchTo: { binary: QemuBinary; settings: Settings } | undefined;
    if (options.qemu !== undefined) {
      const binary = await binaryFromSpec(
        options.qemu,
        this.#settings.env,
        (b) => [b, ...planned.args],
        options.cacheDir,
      );
      const record = await storedBinary(binary);
      const types = await machineTypes(
        binary,
        this.#settings.env,
        `${record.size}:${record.mtimeMs}`,
      );
      const pinned = repin ? undefined : launch.machineType;
      resolveMachineType(pinned ?? model.machine.type, types, binary, pinned !== undefined);
      launch = { ...launch, qemu: binary.path, binary: record };
      switchTo = {
        binary,
        settings: {
          ...this.#settings,
          env: qemuBinaryEnv(binary, this.#settings.env),
          qemuArgs: qemuBinaryArgs(binary),
        },
      };
    } else if (
      this.#binary.includes('/') &&
      (await stat(this.#binary).catch(() => undefined)) === undefined
    ) {
      // Removed since the launch (an upgrade in place): the running QEMU stays.
      throw new QemuBinaryError('not-found', this.#binary, {
        detail: `the state file names QEMU ${this.#launch.binary?.version ?? ''} at ${this.#binary}, which no longer exists; restart with \`qemu\` set to the binary to use now`,
        ...(this.#launch.binary !== undefined ? { version: this.#launch.binary.version } : {}),
      });
    }
    // Files to inherit must open before the running QEMU is touched.
    for (const file of options.inheritFiles ?? []) {
      const handle = await open(file.path, file.flags ?? 'r', file.mode ?? 0o600);
      await handle.close();
    }
    await this.#end(this.#proc, options);
    this.#status = 'stopped';
    for (const console of this.#consoles.values()) {
      console.detach();
      if (options.keepConsoleBuffers !== true) console.read();
    }
    for (const saved of options.consoleState ?? [])
      this.console(saved.chardev).restore(saved.unread);
    let proc: Proc;
    try {
      // After stop() a temporary run directory is gone and the lock released: take both again.
      await prepareRunDir({ runDir: this.#runDir });
      if (this.#lock?.owned() !== true) this.#lock = await acquireRunDirLock(this.#runDir);
      if (switchTo !== undefined) {
        // From here on this machine runs the new binary (a failed start is retried on it).
        this.#binary = switchTo.binary.path;
        this.#settings = switchTo.settings;
        this.#launch = launch;
      }
      proc = await startProcess(
        this.#binary,
        true,
        model,
        launch,
        this.#settings,
        this.#consoles,
        options,
        { runDir: this.#runDir, role: restartRole(options) },
      );
      this.#launch = repin ? await pinMachineType(proc, model, launch, this.#settings) : launch;
    } catch (error) {
      this.#persistInBackground('restart failed');
      throw error;
    }
    this.#proc = proc;
    this.#config = model;
    this.#status = 'running';
    this.#trays = {};
    this.#watch(proc);
    await this.#persist();
    return proc.inherited;
  }

  // ---- internals ---------------------------------------------------------------------------

  #running(operation: string): MachineQmp {
    if (this.#proc.exit !== undefined || this.#status !== 'running')
      throw new MachineNotRunningError(operation);
    return this.#proc.qmp;
  }

  async #runStep(
    qmp: MachineQmp,
    step: PlugStep | UnplugStep,
    options: HotplugOptions,
  ): Promise<void> {
    if (!('awaitEvent' in step)) {
      await qmp.executeUnchecked(step.execute, step.arguments);
      return;
    }
    const id = step.awaitEvent.match.device;
    this.#expectedDeletions.add(id);
    const deleted = qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === id);
    try {
      await qmp.executeUnchecked(step.execute, step.arguments);
      await deleted.wait({ timeout: options.deviceDeletedTimeout ?? 30_000 });
    } finally {
      deleted.cancel();
      this.#expectedDeletions.delete(id);
    }
  }

  #watch(proc: Proc): void {
    const qmp = proc.qmp;
    qmp.on('DEVICE_DELETED', (event) => {
      const id = event.data.device;
      if (id === undefined || this.#expectedDeletions.has(id) || proc !== this.#proc) return;
      if (!(this.#config.devices ?? []).some((d) => d.id === id)) return;
      try {
        this.#config = planUnplug(this.#config, { devices: [id] }, { cascade: false }).config;
      } catch (error) {
        this.#settings.logger.warn(`DEVICE_DELETED ${id}: the model cannot drop it`, error);
        return;
      }
      this.#persistInBackground(`DEVICE_DELETED ${id}`);
    });
    qmp.on('DEVICE_TRAY_MOVED', (event) => {
      if (proc !== this.#proc) return;
      this.#trays = {
        ...this.#trays,
        [event.data.id]: event.data['tray-open'] ? 'open' : 'closed',
      };
      this.#persistInBackground(`DEVICE_TRAY_MOVED ${event.data.id}`);
    });
    qmp.on('BLOCK_JOB_COMPLETED', (event) => {
      if (proc !== this.#proc || proc.exit !== undefined) return;
      this.syncBlockGraph().catch((error: unknown) =>
        this.#settings.logger.warn(
          `BLOCK_JOB_COMPLETED ${event.data.device}: block graph not synced`,
          error,
        ),
      );
    });
    void proc.exited.then(async (exit) => {
      if (proc !== this.#proc || proc.ending) return;
      this.#status = 'exited';
      await this.#persist().catch((error: unknown) =>
        this.#settings.logger.warn(
          `QEMU exited (${exit.signal ?? exit.code}): state file not written`,
          error,
        ),
      );
      // No VM to drive any more: another Machine of this process may relaunch the state
      // (other processes still see this one as the holder while it lives; `restart` takes the
      // lock again, or fails if someone else has it by then).
      if (proc === this.#proc && this.#status === 'exited') this.#lock?.disown();
    });
  }

  #runtime(): RuntimeFacts {
    const proc = this.#proc;
    return {
      runDir: this.#runDir,
      ownsRunDir: this.#ownsRunDir,
      status: this.#status,
      pid: proc.pid,
      pidStartTime: proc.startTime,
      parentPid: process.pid,
      qemuBinary: this.#binary,
      qemuVersion: proc.version,
      accel: proc.accel,
      exit: proc.exit === undefined ? null : { code: proc.exit.code, signal: proc.exit.signal },
      trays: { ...this.#trays },
      updatedAt: new Date().toISOString(),
      ...(this.#migration !== undefined ? { migration: this.#migration } : {}),
    };
  }

  /** Writes the state file (in order with earlier writes). */
  #persist(): Promise<void> {
    const file = this.#stateFile;
    // Without the lock the state file is another manager's (or nobody's) to write.
    if (file === undefined || this.#lock?.owned() !== true) return Promise.resolve();
    const doc = stateDocument(this.#config, this.#launch, this.#runtime());
    // Only orders this write after the last one: that one's failure went to its own caller (or the
    // logger).
    const next = this.#writes.catch(() => {}).then(() => writeState(file, doc));
    this.#writes = next;
    return next;
  }

  #persistInBackground(why: string): void {
    this.#persist().catch((error: unknown) =>
      this.#settings.logger.warn(`${why}: state file not written`, error),
    );
  }

  async #end(proc: Proc, options: StopOptions): Promise<ExitInfo> {
    proc.ending = true;
    if (proc.exit !== undefined) return proc.exit;
    const quitTimeout = options.quitTimeout ?? 10_000;
    try {
      await proc.qmp.execute('quit', undefined, { timeout: quitTimeout });
    } catch {
      // The connection may close before the reply; the exit is what counts.
    }
    let exit = await within(proc.exited, quitTimeout);
    if (exit === undefined) {
      proc.child.kill('SIGTERM');
      exit = await within(proc.exited, options.termTimeout ?? 5_000);
    }
    if (exit === undefined) {
      proc.child.kill('SIGKILL');
      exit = await proc.exited;
    }
    // QEMU has exited (the exit is the outcome); a failure to close our end of its gone socket says
    // nothing more.
    await proc.qmp.close().catch(() => {});
    return exit;
  }

  async #finish(_exit: ExitInfo): Promise<void> {
    this.#status = 'stopped';
    for (const console of this.#consoles.values()) console.detach();
    const inRunDir =
      this.#stateFile !== undefined && path.dirname(this.#stateFile) === this.#runDir;
    // Waits for writes in flight before the run dir goes; their failures went to their own callers.
    if (this.#ownsRunDir) await this.#writes.catch(() => {});
    if (!this.#ownsRunDir || !(inRunDir || this.#stateFile === undefined)) await this.#persist();
    if (this.#ownsRunDir) await rm(this.#runDir, { recursive: true, force: true });
    const lock = this.#lock;
    this.#lock = undefined;
    await lock?.release();
  }
}

/**
 * What a relaunch does about a migration its state file records: a source before the
 * hand-over relaunches (the target it started is ended, returned here); a source from
 * `confirming` on is refused (the guest may run on the target: relaunch that one); a target
 * that never got the guest is refused (the source is the VM); a target from `confirming` on
 * relaunches as the VM and ends its source's QEMU (`endSource`).
 */
function migrationToUndo(record: MigrationRecord | undefined): MigrationRecovery | undefined {
  if (record === undefined) return undefined;
  // A paused post-copy: neither side is the VM alone, and a relaunch would kill its QEMU.
  if (record.phase === 'postcopy-paused' || record.phase === 'recovering')
    throw new LiveMigrationError(
      'postcopy-paused',
      record.phase,
      `this QEMU is the ${record.role} of a post-copy migration whose link broke: the target holds the guest's state and received pages, the source the pages not yet sent, so neither QEMU may be killed or relaunched; recover the link (recoverPostcopy) with both still running${record.peer?.stateFile ? ` (the other side: ${record.peer.stateFile})` : ''}`,
      { peerStateFile: record.peer?.stateFile ?? null },
    );
  const handedOver =
    MIGRATION_PHASES.indexOf(record.phase) >= MIGRATION_PHASES.indexOf('confirming');
  if (record.role === 'source' && handedOver)
    throw new LiveMigrationError(
      'moved',
      record.phase,
      `the VM was handed over to the target${record.peer?.stateFile ? ` (${record.peer.stateFile})` : ''}; relaunch that state file`,
      { peerStateFile: record.peer?.stateFile ?? null },
    );
  if (record.role === 'target' && !handedOver)
    throw new LiveMigrationError(
      'incomplete-target',
      record.phase,
      `this QEMU was started to receive a migration that did not reach the hand-over; the source${record.peer?.stateFile ? ` (${record.peer.stateFile})` : ''} is the VM`,
      { peerStateFile: record.peer?.stateFile ?? null },
    );
  if (record.peer === null) return undefined;
  return record.role === 'source'
    ? { undo: record.peer }
    : { endSource: { runDir: record.peer.runDir } };
}

/**
 * What a relaunch finishes for a migration its state file records: `undo`, a source's target
 * that never got the guest (ended, its files removed); `endSource`, a target's source from
 * `confirming` on — paused with a stale copy of the guest, its monitor gone with the crashed
 * manager — whose QEMU is ended so that only the relaunched target runs the VM.
 */
interface MigrationRecovery {
  readonly undo?: NonNullable<MigrationRecord['peer']>;
  readonly endSource?: { readonly runDir: string };
}

/**
 * Ends the QEMUs of a handed-over source's run directory, under that directory's lock (a live
 * holder means a manager still drives it: then it is left alone, with a warning). Its state
 * file keeps the record that makes a relaunch of it refused (`moved`).
 */
async function endMigrationSource(runDir: string, settings: Settings): Promise<void> {
  let lock: RunDirLock | undefined;
  try {
    await stat(runDir);
  } catch {
    return; // Removed already, or on another host (a remote source): nothing of it runs here.
  }
  try {
    lock = await acquireRunDirLock(runDir);
    const ended = await endRunDirQemus(runDir, { logger: settings.logger });
    if (ended.length > 0)
      settings.logger.warn(
        `ended the QEMU (pid ${ended.map((e) => e.pid).join(', ')}) of the migration source in ${runDir}: the guest was handed over to this target`,
      );
  } catch (error) {
    settings.logger.warn(`the migration source in ${runDir} was not ended`, error);
  } finally {
    await lock?.release();
  }
}

/** Ends the QEMUs of a migration target's run directory and removes what the migration made. */
async function removeMigrationTarget(
  peer: NonNullable<MigrationRecord['peer']>,
  settings: Settings,
): Promise<void> {
  try {
    await endRunDirQemus(peer.runDir, { logger: settings.logger });
    // The target's fresh disk images (a disk copy), newest first: files, then their dirs.
    for (const f of [...(peer.files ?? [])].reverse())
      await rm(f, { recursive: true, force: true });
    if (peer.createdRunDir) await rm(peer.runDir, { recursive: true, force: true });
    else if (peer.stateFile !== null)
      for (const f of [peer.stateFile, backupPath(peer.stateFile)]) await rm(f, { force: true });
  } catch (error) {
    settings.logger.warn(`the migration target in ${peer.runDir} was not fully removed`, error);
  }
}

/** An `incoming` QEMU is one a restore started (the journal says so, for the next manager). */
function restartRole(options: RestartOptions): QemuRole {
  return options.incoming === true ? 'incoming' : 'vm';
}

/** The image files of the writable qcow2 nodes of `config` (where a killed save leaks). */
function writableQcow2Files(config: VmConfig): string[] {
  const nodes = config.blockdevs ?? [];
  const byName = new Map(nodes.map((n) => [n['node-name'], n]));
  const out: string[] = [];
  for (const node of nodes) {
    const n = node as BlockNode & { file?: unknown; 'read-only'?: unknown };
    if (n.driver !== 'qcow2' || n['read-only'] === true || typeof n.file !== 'string') continue;
    const file = byName.get(n.file) as (BlockNode & { filename?: unknown }) | undefined;
    if (file?.driver === 'file' && typeof file.filename === 'string')
      out.push(path.resolve(file.filename));
  }
  return out;
}

/**
 * After an unclean end (QEMU or its manager killed), reclaims leaked clusters of the VM's
 * writable qcow2 images (an internal save killed in the middle leaves them) while no QEMU
 * holds them, and says so in the log. A failure is logged, never fatal: leaks waste space,
 * they do not corrupt.
 */
async function reclaimLeaks(
  config: VmConfig,
  qemuImg: string | undefined,
  settings: Settings,
): Promise<void> {
  for (const file of writableQcow2Files(config)) {
    try {
      const repair = await repairLeaks(file, {
        ...(qemuImg !== undefined ? { qemuImg } : {}),
        logger: settings.logger,
      });
      if (repair.leaks > 0)
        settings.logger.warn(
          `reclaimed ${repair.leaksFixed} of ${repair.leaks} leaked cluster(s) in ${file} (qemu-img check -r leaks) after an unclean end`,
        );
    } catch (error) {
      settings.logger.warn(
        `qemu-img check -r leaks of ${file} failed; leaks, if any, remain`,
        error,
      );
    }
  }
}

/** The configuration without the items whose unplug steps ran. */
function removeDone(config: VmConfig, done: readonly UnplugStep[]): VmConfig {
  const selection = {
    devices: [] as string[],
    blockdevs: [] as string[],
    netdevs: [] as string[],
    chardevs: [] as string[],
    objects: [] as string[],
  };
  for (const step of done) {
    switch (step.execute) {
      case 'device_del':
        selection.devices.push(step.arguments.id);
        break;
      case 'blockdev-del':
        selection.blockdevs.push(step.arguments['node-name']);
        break;
      case 'netdev_del':
        selection.netdevs.push(step.arguments.id);
        break;
      case 'chardev-remove':
        selection.chardevs.push(step.arguments.id);
        break;
      case 'object-del':
        selection.objects.push(step.arguments.id);
        break;
    }
  }
  return planUnplug(config, selection, { cascade: false }).config;
}

/** Starts QEMU for `config`; see `Machine.launch`. */
export function launch(config: VmConfig, options: LaunchOptions = {}): Promise<Machine> {
  return Machine.launch(config, options);
}

/** The launch with the versioned machine type `model`'s type stands for on the running QEMU. */
async function pinMachineType(
  proc: Proc,
  model: VmConfig,
  launch: StoredLaunch,
  settings: Settings,
): Promise<StoredLaunch> {
  try {
    const machines = await proc.qmp.execute('query-machines');
    const pinned = pinFromQueryMachines(model.machine.type, machines);
    if (pinned !== undefined) return { ...launch, machineType: pinned };
    settings.logger.warn(
      `query-machines does not list '${model.machine.type}'; machine type not pinned`,
    );
  } catch (error) {
    settings.logger.warn('query-machines failed; machine type not pinned', error);
  }
  return launch;
}

function withoutPin(launch: StoredLaunch): StoredLaunch {
  const { machineType: _dropped, ...rest } = launch;
  return rest;
}
