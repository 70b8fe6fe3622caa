/**
 * One QEMU process: the command line for it (validated before anything is spawned), the
 * spawn with an argument array, QMP and consoles on inherited socketpairs, readiness
 * (greeting + negotiation), and cold-plug over QMP for `assemble: 'qmp'`.
 */
import {
  assemblyPlan,
  assertValid,
  type ChardevConfig,
  deviceProps,
  type PlugStep,
  toArgv,
  type VmConfig,
} from '@qmpkit/devices';
import type { Commands, Events } from '@qmpkit/qapi';
import { connect, type Logger, type QmpClient, type ValidateMode } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import type { Console, ConsoleState } from './console.js';
import { MachineOptionsError, QemuLaunchError } from './errors.js';
import { processStartTime } from './proc.js';
import { awaitQmp, type LaunchErrorFactory, type SpawnedChild, spawnChild } from './spawn-qmp.js';
import type { QemuVersion, StoredLaunch } from './state.js';
import { journal, pidfileArgs, type QemuRole } from './tracking.js';

/** The typed QMP client of a machine (QEMU 7.2 bindings). */
export type MachineQmp = QmpClient<Commands, Events>;

export type { ExitInfo } from './spawn-qmp.js';
export { within } from './spawn-qmp.js';

/** A file QEMU inherits as an fd, e.g. a saved state for `migrate-incoming uri=fd:N`. */
export interface InheritFile {
  readonly path: string;
  /** As for `fs.open` (default `'r'`). */
  readonly flags?: string | number;
  /** Mode when the file is created (default 0600). */
  readonly mode?: number;
}

/** An inherited file of the current QEMU process. */
export interface InheritedFileInfo {
  readonly path: string;
  /** Its fd number inside QEMU. */
  readonly fd: number;
  /** `fd:N`, for `migrate-incoming` / `-incoming`. */
  readonly uri: string;
  /** `-add-fd fd=N,set=S` arguments, should the caller need an fd set instead. */
  addFdArgs(set: number, opaque?: string): string[];
}

/** Options that apply to one QEMU process only (never stored in the state file). */
export interface ProcessOptions {
  /** Start with `-incoming defer` (restore a saved state with `migrate-incoming`). */
  readonly incoming?: boolean;
  /** Leave the CPUs stopped (`-S`; with `assemble: 'qmp'`, no `cont` after assembly). */
  readonly paused?: boolean;
  /** Files QEMU inherits; their `fd:N` URIs are `machine.inheritedFiles`. */
  readonly inheritFiles?: readonly InheritFile[];
  /** Unread console text to start with (e.g. saved with a snapshot). */
  readonly consoleState?: readonly ConsoleState[];
  /** Aborts the launch (QEMU is killed). */
  readonly signal?: AbortSignal;
}

/** The QMP chardev id used when the configuration reserves none. */
export const DEFAULT_QMP_CHARDEV = 'qmpkit-qmp';
export interface Proc
  extends Pick<
    SpawnedChild,
    'child' | 'pid' | 'argv' | 'exited' | 'exit' | 'drained' | 'stderr' | 'stdout'
  > {
  readonly qmp: MachineQmp;
  readonly inherited: readonly InheritedFileInfo[];
  readonly accel: string;
  readonly version: QemuVersion;
  readonly startTime: number | null;
  /** Set when this side ended the process (stop, kill, restart). */
  ending: boolean;
}

export interface Settings {
  readonly env: NodeJS.ProcessEnv;
  readonly validate: ValidateMode;
  readonly logger: Logger;
  readonly stderrBytes: number;
  readonly consoleCapacity: number;
  /** Options the binary needs before any other (`-L <data dir>`), see `qemuBinaryArgs`. */
  readonly qemuArgs?: readonly string[];
}

/** A chardev backend on an inherited socket (`-chardev socket,id=…,fd=N,server=off`). */
function fdBackend(fd: number): ChardevConfig['backend'] {
  return {
    type: 'socket',
    data: { addr: { type: 'fd', data: { str: String(fd) } }, server: false },
  };
}

export interface Plan {
  readonly args: string[];
  readonly steps: readonly PlugStep[];
  /** Whether a plugged device has a bootindex (then the firmware needs a reset to see it). */
  readonly bootDevicePlugged: boolean;
  readonly cont: boolean;
}

/**
 * The command line (without the binary) and the QMP steps for one process. Pure: the fd
 * numbers are passed in, so this also validates everything before anything is spawned.
 */
export function planProcess(
  model: VmConfig,
  launch: StoredLaunch,
  perProcess: ProcessOptions,
  fds: { readonly qmp: number; readonly consoles: ReadonlyMap<string, number> },
): Plan {
  assertValid(model);
  const chardevIds = new Set((model.chardevs ?? []).map((c) => c.id));
  for (const c of launch.consoles) {
    if (!chardevIds.has(c.chardev))
      throw new MachineOptionsError(
        'consoles',
        `the configuration has no chardev '${c.chardev}' to connect a console to`,
      );
  }
  const qmpChardev = model.qmp?.chardev ?? DEFAULT_QMP_CHARDEV;
  const qmpArgs = [
    '-chardev',
    `socket,id=${qmpChardev},fd=${fds.qmp}`,
    '-mon',
    `chardev=${qmpChardev},mode=control`,
  ];
  const qmpAssembly = launch.assemble === 'qmp';
  // A pinned machine type replaces the alias the configuration names (`pc` → `pc-i440fx-7.2`).
  const machine =
    launch.machineType === undefined
      ? model.machine
      : { ...model.machine, type: launch.machineType };
  const paused = perProcess.paused === true || model.paused === true;
  const incoming = perProcess.incoming === true;
  const processConfig: VmConfig = {
    ...model,
    machine,
    paused: paused || qmpAssembly,
    ...(incoming ? { incoming: 'defer' as const } : {}),
    chardevs: (model.chardevs ?? []).map((c) => {
      const fd = fds.consoles.get(c.id);
      return fd === undefined ? c : { id: c.id, backend: fdBackend(fd) };
    }),
  };
  if (!qmpAssembly) {
    return {
      args: [...toArgv(processConfig, { qmp: { args: qmpArgs } }), ...launch.extraArgs],
      steps: [],
      bootDevicePlugged: false,
      cont: false,
    };
  }
  const plan = assemblyPlan(processConfig, {
    keep: { chardevs: launch.consoles.map((c) => c.chardev) },
  });
  return {
    args: [...toArgv(plan.base, { qmp: { args: qmpArgs } }), ...launch.extraArgs],
    steps: plan.steps,
    bootDevicePlugged: (plan.parts.devices ?? []).some(
      (d) => deviceProps(d).bootindex !== undefined,
    ),
    cont: !paused && !incoming,
  };
}

export function dummyConsoleFds(launch: StoredLaunch): Map<string, number> {
  return new Map(launch.consoles.map((c, i) => [c.chardev, 4 + i]));
}

/**
 * Spawns QEMU, connects QMP over the inherited socketpair, attaches the consoles and, for
 * `assemble: 'qmp'`, plugs the devices and starts the CPUs.
 */
export async function startProcess(
  binary: string,
  found: boolean,
  model: VmConfig,
  launch: StoredLaunch,
  settings: Settings,
  consoles: ReadonlyMap<string, Console>,
  perProcess: ProcessOptions,
  track: { readonly runDir: string; readonly role: QemuRole },
): Promise<Proc> {
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const qmpPair = fds.socketpair();
  const consolePairs = new Map(launch.consoles.map((c) => [c.chardev, fds.socketpair()]));
  const plan = planProcess(model, launch, perProcess, {
    qmp: qmpPair.fd,
    consoles: new Map([...consolePairs].map(([id, pair]) => [id, pair.fd])),
  });
  // `-pidfile` in the run directory: QEMU records its pid, and the run directory is in its
  // command line, so a later manager finds it even if this process dies right after spawn.
  const args = [...(settings.qemuArgs ?? []), ...plan.args, ...pidfileArgs(track.runDir)];
  const argv = [binary, ...args];
  if (!found) {
    throw new QemuLaunchError('not-found', `QEMU binary '${binary}' not found (ENOENT)`, {
      argv,
    });
  }
  const inherited: InheritedFileInfo[] = [];
  try {
    for (const file of perProcess.inheritFiles ?? []) {
      const f = fds.openFile(file.path, file.flags ?? 'r', file.mode ?? 0o600);
      inherited.push({
        path: file.path,
        fd: f.fd,
        uri: f.uri,
        addFdArgs: (set, opaque) => f.addFdArgs(set, opaque),
      });
    }
  } catch (error) {
    fds.closeParentCopies();
    throw error;
  }
  if (perProcess.signal?.aborted) {
    fds.closeParentCopies();
    throw perProcess.signal.reason;
  }
  try {
    // The intent is on disk before the process exists.
    await journal(track.runDir, {
      op: 'spawn',
      role: track.role,
      manager: process.pid,
      at: new Date().toISOString(),
    });
  } catch (error) {
    fds.closeParentCopies();
    throw new QemuLaunchError(
      'spawn-failed',
      `cannot record the launch in ${track.runDir} (${String(error)})`,
      { argv },
      { cause: error },
    );
  }
  const fail: LaunchErrorFactory = (reason, detail, fields, options) =>
    new QemuLaunchError(reason, detail, fields, options);
  const spawned = await spawnChild(binary, args, {
    fds,
    env: settings.env,
    ringBytes: settings.stderrBytes,
    fail,
  });
  const { child, pid, exited, drained, stderr, stdout } = spawned;
  for (const [id, pair] of consolePairs) consoles.get(id)?.attach(pair.socket(child));
  const startTime = (await processStartTime(pid)) ?? null;
  const note = (entry: Parameters<typeof journal>[1]) =>
    journal(track.runDir, entry).catch((error: unknown) => {
      // A temporary run directory is removed with the machine: no journal left to write.
      if ((error as { code?: unknown }).code !== 'ENOENT')
        settings.logger.warn(`journal of ${track.runDir} not written`, error);
    });
  await note({ op: 'pid', pid, startTime });
  void exited.then(() => note({ op: 'exit', pid }));

  const abort = perProcess.signal;
  const qmp: MachineQmp = await awaitQmp(
    spawned,
    connect(qmpPair.address(child), {
      connectTimeout: launch.launchTimeout,
      validate: settings.validate,
      logger: settings.logger,
      ...(abort ? { signal: abort } : {}),
    }),
    {
      program: 'QEMU',
      timeoutMs: launch.launchTimeout,
      exitGraceMs: 2000,
      ...(abort ? { signal: abort } : {}),
      fail,
    },
  );

  let accel = 'tcg';
  let version: QemuVersion;
  try {
    const kvm = await qmp.execute('query-kvm');
    const listed = (model.accel ?? []).map((a) => (typeof a === 'string' ? a : a.type));
    accel = kvm.enabled ? 'kvm' : listed.includes('tcg') || listed.length === 0 ? 'tcg' : 'unknown';
    const v = qmp.greeting.version;
    version = {
      major: v.qemu.major,
      minor: v.qemu.minor,
      micro: v.qemu.micro,
      package: v.package,
    };
    for (const step of plan.steps) {
      try {
        await qmp.executeUnchecked(step.execute, step.arguments);
      } catch (error) {
        const label = `${step.execute} ${JSON.stringify(step.arguments)}`;
        throw Object.assign(new Error(`cold-plug step ${label} failed: ${String(error)}`), {
          cause: error,
          assembly: true,
        });
      }
    }
    if (plan.bootDevicePlugged) {
      // The firmware's boot order (fw_cfg "bootorder") is built at reset: reset once so
      // devices plugged before `cont` are in it.
      const reset = qmp.expectEvent('RESET');
      await qmp.execute('system_reset');
      await reset.wait({ timeout: launch.launchTimeout });
    }
    if (plan.cont) await qmp.execute('cont');
  } catch (error) {
    // The launch already failed with `error` (thrown below); QEMU is killed next, so a close error
    // adds nothing.
    await qmp.close().catch(() => {});
    const exitedBefore = spawned.exit !== undefined;
    const exit = spawned.exit ?? (await spawned.kill());
    const assembly = (error as { assembly?: boolean }).assembly === true;
    throw new QemuLaunchError(
      exitedBefore && !assembly ? 'exited' : assembly ? 'assembly' : 'handshake',
      error instanceof Error ? error.message : String(error),
      { argv, exitCode: exit.code, signal: exit.signal, stderr: stderr.text() },
      { cause: error },
    );
  }
  return {
    child,
    pid,
    argv,
    exited,
    get exit() {
      return spawned.exit;
    },
    drained,
    stderr,
    stdout,
    qmp,
    inherited,
    accel,
    version,
    startTime,
    ending: false,
  };
}
