/**
 * Live migration of a local machine into a second QEMU that this module starts: same
 * configuration, the source's pinned machine type, `-incoming defer`; the stream over a unix
 * socket in the target's run directory or TCP. The phases and what undoes them:
 *
 * | phase             | what runs                                        | on failure / abort            |
 * |-------------------|--------------------------------------------------|-------------------------------|
 * | `starting-target` | checks, target launched (`-incoming defer`)      | target killed, files removed  |
 * | `setup`           | capabilities/parameters both sides, listen       | same                          |
 * | `transferring`    | `migrate`; RAM copied while the guest runs       | `migrate_cancel`, same        |
 * | `switchover`      | source stopped at `pre-switchover`, continue     | `migrate_cancel` (guest runs) |
 * | `confirming`      | wait for the target's own RESUME (or `paused`)   | source `cont`, target killed¹ |
 * | `finishing`       | source `quit`; the target is the machine         | —                             |
 *
 * ¹ Only when the target fails. A source that exits after its `completed` (with `return-path`:
 * after the target loaded everything) is no failure: the target is still awaited as the VM.
 *
 * Success is read from the target: its RESUME event (a source that was paused: `paused` after
 * its MIGRATION `completed`). The source's `completed` alone proves nothing — without
 * `return-path` a target that died while loading still shows `completed` on the source —
 * so `return-path` is set on both sides whenever both have it, and the target is still the
 * judge. The phase is written into both state files before each step (`MigrationRecord`), so
 * `Machine.relaunch` after a crash of this process knows which side is the VM.
 *
 * Capabilities come from the running QEMUs (`query-migrate-capabilities` lists exactly what a
 * binary supports; 10.0 dropped some 7.2 has): `events` and `return-path` always,
 * `pause-before-switchover` where present (the hand-over waits for us, which is where disk
 * mirrors will be completed), `multifd` when asked and both sides have it. `max-bandwidth` is
 * raised (QEMU's default 128 MiB/s throttles even a local copy).
 *
 * `tls` puts the stream and the disk copy's NBD link under `tls-creds-x509` (one object per
 * side). `postcopy` adds `postcopy-ram` on both sides; once the source reports
 * `postcopy-active` the target runs the guest and nothing is rolled back (`postcopy-failed`).
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { deviceProps, type VmConfig } from '@qmpkit/devices';
import type { Commands } from '@qmpkit/qapi';
import type { Logger } from '@qmpkit/transport';
import type { QemuBinary } from './binary.js';
import type { BlockJob } from './block-jobs.js';
import {
  ConvergenceController,
  type ConvergenceDecision,
  type ConvergenceOptions,
} from './convergence.js';
import {
  type CopiedDisk,
  createTargetImages,
  type DiskProgress,
  endMirrors,
  exportTargetDisks,
  mirrorProgress,
  type NbdAddress,
  type NbdTls,
  type NbdTransport,
  planDiskCopy,
  plannedPaths,
  removeExports,
  removeMade,
  startMirrors,
  sweepSource,
  untilMirrorsReady,
} from './disk-copy.js';
import {
  isLiveMigrationError,
  LiveMigrationError,
  type LiveMigrationFailure,
  MachineTypeError,
} from './errors.js';
import { binaryFromSpec, binaryFromState, type QemuSpec, storedBinary } from './launch-binary.js';
import { LOCK_FILE } from './lock.js';
import { type ExitInfo, launch, type Machine } from './machine.js';
import { machineTypes, resolveMachineType } from './machine-type.js';
import {
  ACTIVE,
  busy,
  cancelSourceMigration,
  MigrationRunBase,
  PhaseClock,
  type PhaseDeadline,
  ProgressHub,
  sampleMigration,
} from './migration-run.js';
import {
  addTlsCredentials,
  type MigrationTls,
  removeTlsCredentials,
  requirePostcopy,
  TLS_OBJECT_ID,
} from './migration-transport.js';
import {
  type PostcopyRecoveryOptions,
  recoverLink,
  whoHoldsTheTruth,
} from './postcopy-recovery.js';
import { within } from './process.js';
import type { MigrationPhase, MigrationRecord } from './state.js';

export { ACTIVE, busy, type PhaseDeadline, ProgressHub };

type MigrationInfo = Commands['query-migrate']['returns'];
type MigrationStatus = NonNullable<MigrationInfo['status']>;
type Capability = Commands['migrate-set-capabilities']['args']['capabilities'][number];
type Parameters = Commands['migrate-set-parameters']['args'];

/** Where the target QEMU comes from and where it lives. */
export interface MigrationTarget {
  /** The target's QEMU (default: the binary the source runs on). */
  readonly qemu?: QemuSpec;
  /**
   * The target's configuration (default: the source's). It must describe the same guest:
   * differences in what the guest sees are refused before anything starts (`config-mismatch`);
   * host-side details (image paths, chardev backends) may differ.
   */
  readonly config?: VmConfig;
  /** The target's run directory (created 0700; default a fresh one beside the source's). */
  readonly runDir?: string;
  /** Otherwise a fresh `qmpkit-machine-XXXXXX` here (default: the source's run dir's parent). */
  readonly runDirParent?: string;
  /** The target's state file (default `<runDir>/state.json`); `false` for none. */
  readonly stateFile?: string | false;
  /**
   * `disks: 'copy'`: the directory for the target's fresh images (created 0700; default
   * `<runDir>/disks` when `runDir` is given). Unused when `config` names the images itself.
   */
  readonly diskDir?: string;
  /** Milliseconds for the target's QMP to come up (default: the source's launch timeout). */
  readonly launchTimeout?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** How the stream travels: a unix socket (in the target's run dir by default) or TCP. */
export type MigrationTransport =
  | { readonly type: 'unix'; readonly path?: string }
  | { readonly type: 'tcp'; readonly host?: string; readonly port?: number };

export interface MigrationDeadlines {
  /** From the start to `migrate` accepted (target launch, capabilities, listening). */
  readonly setup?: PhaseDeadline;
  /** `disks: 'copy'`: from the mirrors' start until every one is ready (default: `transfer`'s). */
  readonly mirror?: PhaseDeadline;
  /** From `migrate` to the hand-over (`pre-switchover` or the source's `completed`). */
  readonly transfer?: PhaseDeadline;
  /** From the hand-over to the target's RESUME (or `paused`). */
  readonly switchover?: PhaseDeadline;
}

export const DEFAULT_MIGRATION_DEADLINES: Required<MigrationDeadlines> = {
  setup: { warnAfter: 15_000, failAfter: 120_000 },
  mirror: { warnAfter: 120_000, failAfter: 3_600_000 },
  transfer: { warnAfter: 120_000, failAfter: 3_600_000 },
  switchover: { warnAfter: 5_000, failAfter: 120_000 },
};

/** What the `beforeSwitchover` hook gets: both sides, with the source stopped. */
export interface SwitchoverContext {
  readonly source: Machine;
  readonly target: Machine;
  /** `query-migrate` on the source at `pre-switchover`. */
  readonly info: MigrationInfo;
  /**
   * `disks: 'copy'`: the copied disks, their mirrors already ended (the target's images hold
   * the source's data), the target's NBD exports still up at `nbd` (they go after this hook).
   */
  readonly disks: readonly CopiedDisk[];
  readonly nbd: NbdAddress | undefined;
}

export interface LiveMigrateOptions {
  /** Default `{ type: 'unix' }` (a socket in the target's run directory). */
  readonly transport?: MigrationTransport;
  /**
   * `shared` (default): both QEMUs open the same images (shared storage). `copy`: the target
   * gets fresh images (`MigrationTarget.diskDir`), the source mirrors every writable disk into
   * them over NBD before RAM moves, and ends the mirrors at the hand-over.
   */
  readonly disks?: 'shared' | 'copy';
  /** Where the target's NBD server listens for `disks: 'copy'` (default a unix socket in its run dir). */
  readonly nbd?: NbdTransport;
  /** Rate limit of each disk mirror in bytes/s (default none). */
  readonly mirrorSpeed?: number;
  /** Bytes per second (default 16 GiB/s; QEMU's own default, 128 MiB/s, throttles everything). */
  readonly maxBandwidth?: number;
  /** `downtime-limit` in milliseconds (default: QEMU's, 300 ms). */
  readonly downtimeLimit?: number;
  /** Channels for `multifd` (used only when both QEMUs have the capability and TCP is used). */
  readonly multifd?: number;
  /**
   * TLS (`tls-creds-x509`) for the migration stream and, with `disks: 'copy'`, the NBD link:
   * the target gets the server side, the source the client side of the same directory's
   * certificates. `hostname` defaults to the TCP host, else to `localhost` (a unix socket names
   * no host, and QEMU needs one to check the certificate against).
   */
  readonly tls?: MigrationTls;
  /**
   * Post-copy (`postcopy-ram` on both sides; needs userfaultfd here): `true` lets the
   * convergence controller switch when pre-copy does not converge (without the controller: at
   * once); `'immediate'` switches at the first sample that shows RAM on the wire. After the
   * switch the target runs the guest and there is no way back (`postcopy-failed`).
   */
  readonly postcopy?: boolean | 'immediate';
  /**
   * When the link breaks after the switch to post-copy (both QEMUs in `postcopy-paused`): the
   * target listens again on a fresh channel and the source resumes into it, up to `attempts`
   * times (default 3; see `PostcopyRecoveryOptions`). Every attempt failing, or `false`: the
   * result rejects with `postcopy-paused`, both QEMUs alive and paused and the state files saying
   * so; `recoverPostcopy(source, target)` tries again.
   */
  readonly postcopyRecovery?: PostcopyRecoveryOptions | false;
  /** Further capabilities for the source (each only if the source has it). */
  readonly capabilities?: readonly Capability[];
  /** Further `migrate-set-parameters` for the source. */
  readonly parameters?: Parameters;
  /**
   * The convergence controller (default on, with its defaults): small `downtime-limit` first,
   * raised when remaining RAM stops shrinking, `auto-converge`; gives up with
   * `does-not-converge`. `false`: QEMU's own settings (and `downtimeLimit`) only.
   */
  readonly convergence?: ConvergenceOptions | false;
  /** Cancels: `migrate_cancel`, the source keeps running, the target is killed and removed. */
  readonly signal?: AbortSignal;
  /** Milliseconds between `query-migrate` samples (default 250). */
  readonly progressInterval?: number;
  readonly deadlines?: MigrationDeadlines;
  /**
   * Runs at `pre-switchover` (source stopped, target waiting) before the hand-over continues;
   * a rejection rolls the migration back. The place to finish disk mirrors.
   */
  readonly beforeSwitchover?: (context: SwitchoverContext) => Promise<void>;
  /** Called when a phase begins (after the state files say so). */
  readonly onPhase?: (
    phase: MigrationPhase,
    context: { readonly target?: Machine },
  ) => void | Promise<void>;
  /**
   * Called with every `query-migrate` sample while RAM is copied; may change parameters on the
   * source (the convergence controller does) or throw a `LiveMigrationError` to give up.
   */
  readonly onSample?: (sample: MigrationProgress, source: Machine) => Promise<void> | void;
  readonly logger?: Logger;
}

/** One `query-migrate` sample of the source, in plain units. */
export interface MigrationProgress {
  readonly phase: MigrationPhase;
  readonly status: MigrationStatus | 'none';
  /** Milliseconds since `migrate` was issued. */
  readonly elapsedMs: number;
  /** RAM bytes sent so far, still to send, and the guest's total. */
  readonly transferred: number;
  readonly remaining: number;
  readonly total: number;
  /** Bytes per second the guest dirties (QEMU's `dirty-pages-rate` × page size). */
  readonly dirtyRate: number;
  /** Bytes per second on the wire (QEMU's `mbps`). */
  readonly throughput: number;
  /** QEMU's estimate of the downtime at the hand-over, ms. */
  readonly expectedDowntimeMs: number | null;
  /** Passes over RAM (`dirty-sync-count`). */
  readonly iterations: number;
  /** `cpu-throttle-percentage` (auto-converge), when throttled. */
  readonly cpuThrottle: number | null;
  /** `disks: 'copy'`: each mirror's progress (absent otherwise). */
  readonly disks?: readonly DiskProgress[];
  /**
   * Post-copy recovery under way (phase `postcopy-paused` or `recovering`): the attempt, how
   * many there may be, and why the previous one failed.
   */
  readonly recovery?: {
    readonly attempt: number;
    readonly of: number;
    readonly lastError?: string;
  };
}

export interface LiveMigrationResult {
  /** The VM, now on the target QEMU (the source QEMU has ended). */
  readonly machine: Machine;
  readonly uri: string;
  /** Capabilities set on the source. */
  readonly capabilities: readonly string[];
  /** Whether the guest runs (false: the source was paused, and so is the target). */
  readonly running: boolean;
  /** STOP on the source → RESUME on the target, from QEMU's event timestamps (ms). */
  readonly downtimeMs: number | null;
  /** The source's own `downtime` and `total-time` (ms), when it reported them. */
  readonly qemuDowntimeMs: number | null;
  readonly totalTimeMs: number | null;
  /** The last sample before the hand-over. */
  readonly lastProgress: MigrationProgress | null;
  /** The convergence controller's decisions, in order (empty without it). */
  readonly decisions: readonly ConvergenceDecision[];
  /** Whether the hand-over went through post-copy. */
  readonly postcopy: boolean;
  /** Post-copy breaks of the link that were recovered. */
  readonly recoveries: number;
}

/** A migration under way: its result, its progress, and a way to cancel it. */
export interface LiveMigration {
  /** The target as the machine, or a `LiveMigrationError` after a complete roll-back. */
  readonly result: Promise<LiveMigrationResult>;
  /** Samples from now until the migration ends (each iterator gets every later sample). */
  readonly progress: AsyncIterable<MigrationProgress>;
  readonly phase: MigrationPhase;
  /**
   * Cancels and resolves once rolled back (the source runs, the target is gone). A second call
   * while cancelling gets the same promise; a call after the end (also after a cancel that took
   * effect) rejects with `not-active` and changes nothing. After the switch to post-copy QEMU
   * cannot cancel (the target runs the guest): `cannot-cancel`.
   */
  cancel(reason?: unknown): Promise<void>;
  /**
   * `migrate-pause` on the source while post-copy is active: cuts the stream as a broken link
   * would (both QEMUs go to `postcopy-paused`), after which the run recovers as
   * `postcopyRecovery` says. Refused (`not-active`) in any other state. For tests and for
   * moving the stream to another channel.
   */
  pausePostcopy(): Promise<void>;
}

/** A progress sample of phase `mirroring`: the disks' mirrors, no RAM moved yet. */
export function mirroringSample(disks: DiskProgress[], elapsedMs: number): MigrationProgress {
  return {
    phase: 'mirroring',
    status: 'none',
    elapsedMs,
    transferred: 0,
    remaining: 0,
    total: 0,
    dirtyRate: 0,
    throughput: 0,
    expectedDowntimeMs: null,
    iterations: 0,
    cpuThrottle: null,
    disks,
  };
}

/** Fields of the configuration the guest sees; the rest (host paths, backends) may differ. */
export function guestDifferences(source: VmConfig, target: VmConfig): string[] {
  const out: string[] = [];
  const same = (what: string, a: unknown, b: unknown) => {
    const ja = JSON.stringify(a ?? null);
    const jb = JSON.stringify(b ?? null);
    if (ja !== jb) out.push(`${what}: source ${ja}, target ${jb}`);
  };
  same('machine', source.machine, target.machine);
  same('cpu', source.cpu, target.cpu);
  same('memory', source.memory, target.memory);
  same('smp', source.smp, target.smp);
  const byId = <T>(items: readonly T[] | undefined, id: (t: T) => string) =>
    new Map((items ?? []).map((t) => [id(t), t]));
  const devicesA = byId(source.devices, (d) => d.id ?? JSON.stringify(d));
  const devicesB = byId(target.devices, (d) => d.id ?? JSON.stringify(d));
  for (const id of new Set([...devicesA.keys(), ...devicesB.keys()]))
    same(`device ${id}`, devicesA.get(id), devicesB.get(id));
  const ids = (
    what: string,
    a: readonly { id: string }[] = [],
    b: readonly { id: string }[] = [],
  ) => same(`${what} ids`, a.map((x) => x.id).sort(), b.map((x) => x.id).sort());
  ids('chardev', source.chardevs, target.chardevs);
  ids('netdev', source.netdevs, target.netdevs);
  ids('object', source.objects, target.objects);
  // The nodes devices use (name and format); what lies below them is the host's business.
  const attached = (config: VmConfig) => {
    const used = new Set((config.devices ?? []).map((d) => deviceProps(d).drive));
    return (config.blockdevs ?? [])
      .filter((n) => used.has(n['node-name']))
      .map((n) => `${n['node-name']}:${n.driver}`)
      .sort();
  };
  same('block nodes', attached(source), attached(target));
  return out;
}

export function progressFrom(
  info: MigrationInfo,
  phase: MigrationPhase,
  elapsedMs: number,
): MigrationProgress {
  const ram = info.ram;
  return {
    phase,
    status: info.status ?? 'none',
    elapsedMs,
    transferred: ram?.transferred ?? 0,
    remaining: ram?.remaining ?? 0,
    total: ram?.total ?? 0,
    dirtyRate: (ram?.['dirty-pages-rate'] ?? 0) * (ram?.['page-size'] ?? 4096),
    throughput: Math.round(((ram?.mbps ?? 0) * 1e6) / 8),
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    iterations: ram?.['dirty-sync-count'] ?? 0,
    cpuThrottle: info['cpu-throttle-percentage'] ?? null,
  };
}

export function eventMs(e: { timestamp: { seconds: number; microseconds: number } }): number {
  return e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
}

/**
 * Moves the running (or paused) `source` into a new QEMU and returns at once; see the module
 * comment for the phases. `result` resolves with the target as the machine, or rejects with a
 * `LiveMigrationError` after the roll-back (source running as before, target gone).
 */
export function migrate(
  source: Machine,
  target: MigrationTarget = {},
  options: LiveMigrateOptions = {},
): LiveMigration {
  const run = new MigrationRun(source, target, options);
  const handle = run.handle();
  return {
    result: handle.result,
    progress: handle.progress,
    get phase() {
      return handle.phase;
    },
    cancel: (reason?: unknown) => handle.cancel(reason),
    pausePostcopy: () => run.pausePostcopy(),
  };
}

class MigrationRun extends MigrationRunBase<LiveMigrationResult, MigrationProgress> {
  readonly #spec: MigrationTarget;
  readonly #options: LiveMigrateOptions;
  #target: Machine | undefined;
  #targetRunDir: { path: string; created: boolean } | undefined;
  /** Whether the caller's target state file was there before (then a roll-back keeps it). */
  #stateFileExisted = true;
  /** `disks: 'copy'`: the disks, what was created for them, the mirrors, the NBD address. */
  #disks: CopiedDisk[] = [];
  readonly #made: string[] = [];
  readonly #jobs: BlockJob[] = [];
  #nbd: NbdAddress | undefined;
  /** Whether a TLS object was added to the source (removed again by a roll-back). */
  #tls = false;
  /** Set once the source reports `postcopy-active`: from then on nothing can be undone. */
  #postcopy = false;
  /** The stream's transport (recovery channels derive from it). */
  #transport: MigrationTransport = { type: 'unix' };
  /** Post-copy recovery: the attempt under way, and the breaks recovered so far. */
  #recovery: MigrationProgress['recovery'];
  #recoveries = 0;

  constructor(source: Machine, target: MigrationTarget, options: LiveMigrateOptions) {
    super(source, options, 'starting-target');
    this.#spec = target;
    this.#options = options;
  }

  protected override tooLateToCancel() {
    if (this.phase === 'finishing' || this.phase === 'done')
      return 'the migration has already ended';
    return this.#postcopy
      ? {
          reason: 'cannot-cancel' as const,
          desc: 'the migration switched to post-copy: QEMU cannot cancel it (the target runs the guest, the source holds the pages not yet sent); it completes, or pauses when the link breaks',
        }
      : undefined;
  }

  async pausePostcopy(): Promise<void> {
    const source = this.source;
    if (this.ended || source.status !== 'running')
      throw new LiveMigrationError('not-active', this.phase, 'the migration has already ended');
    const status = (await source.qmp.execute('query-migrate')).status;
    if (status !== 'postcopy-active')
      throw new LiveMigrationError(
        'not-active',
        this.phase,
        `migrate-pause works only while post-copy is active; the source's migration is in '${status ?? 'none'}'`,
      );
    await this.#command('source', 'migrate-pause', () => source.qmp.execute('migrate-pause'));
  }

  /** After the switch to post-copy the target holds the guest: an abort no longer rolls back. */
  protected override abortHonoured(): boolean {
    return !this.#postcopy;
  }

  async #setPhase(phase: MigrationPhase): Promise<void> {
    this.phase = phase;
    const target = this.#target;
    const files = this.#made.length > 0 ? { files: [...this.#made] } : {};
    const peerOf = (m: Machine, created: boolean, withFiles: boolean): MigrationRecord['peer'] => ({
      runDir: m.runDir,
      stateFile: m.stateFile ?? null,
      createdRunDir: created,
      ...(withFiles ? files : {}),
    });
    const record = (role: 'source' | 'target', peer: MigrationRecord['peer']): MigrationRecord => ({
      role,
      phase,
      peer,
      startedAt: this.startedAt,
    });
    const targetDir = this.#targetRunDir;
    await this.source.recordMigration(
      record(
        'source',
        target !== undefined
          ? peerOf(target, targetDir?.created ?? false, true)
          : targetDir !== undefined
            ? {
                runDir: targetDir.path,
                stateFile: null,
                createdRunDir: targetDir.created,
                ...files,
              }
            : null,
      ),
    );
    if (target !== undefined)
      await target.recordMigration(record('target', peerOf(this.source, false, false)));
    // Awaited when it returns a promise: a test (or a manager) may act on the phase first.
    await this.#options.onPhase?.(phase, target !== undefined ? { target } : {});
  }

  protected override async run(): Promise<LiveMigrationResult> {
    const source = this.source;
    if (source.status !== 'running')
      throw new LiveMigrationError(
        'source-not-running',
        'starting-target',
        `the source machine is ${source.status}`,
        { sourceRunning: false },
      );
    const before = await source.qmp.execute('query-migrate');
    if (before.status !== undefined && ACTIVE.has(before.status))
      throw new LiveMigrationError(
        'busy',
        'starting-target',
        `the source QEMU already has a migration in state '${before.status}'`,
        { sourceRunning: true },
      );
    const wasRunning = (await source.qmp.execute('query-status')).running;
    let config = await this.#checkedConfig();
    if (this.#options.disks === 'copy') {
      const diskDir =
        this.#spec.diskDir ??
        (this.#spec.runDir !== undefined ? path.join(this.#spec.runDir, 'disks') : undefined);
      try {
        const plan = await planDiskCopy(source, config, this.#spec.config !== undefined, diskDir);
        this.#disks = plan.disks;
        config = plan.config;
      } catch (error) {
        throw isLiveMigrationError(error) ? error.withSource(source.status === 'running') : error;
      }
    }
    const env = this.#spec.env ?? process.env;
    const binary = await this.#targetBinary(env);
    await this.#checkMachineType(binary, env);
    this.checkAbort();
    const runDir = await this.#prepareTargetRunDir();
    try {
      await this.#setPhase('starting-target');
      if (this.#disks.length > 0) {
        // Recorded before they exist: a relaunch after a crash removes whatever got made.
        this.#made.push(...(await plannedPaths(this.#disks)));
        await this.#setPhase('starting-target');
        await createTargetImages(this.#disks, this.logger);
      }
      const target = await this.#launchTarget(config, binary, runDir, env);
      this.#target = target;
      await this.#setPhase('setup');
      this.checkAbort();
      return await this.#transfer(target, wasRunning);
    } catch (error) {
      throw await this.#rollBack(error, wasRunning);
    }
  }

  async #checkedConfig(): Promise<VmConfig> {
    const source = this.source;
    const pinned = source.machineType ?? source.config.machine.type;
    const base = source.config;
    const given = this.#spec.config;
    if (given !== undefined) {
      const differences = guestDifferences(
        { ...base, machine: { ...base.machine, type: pinned } },
        {
          ...given,
          machine: {
            ...given.machine,
            type: given.machine.type === base.machine.type ? pinned : given.machine.type,
          },
        },
      );
      if (differences.length > 0)
        throw new LiveMigrationError(
          'config-mismatch',
          'starting-target',
          'the target configuration describes another guest than the source runs',
          { sourceRunning: source.status === 'running', differences },
        );
    }
    const config = given ?? base;
    return { ...config, machine: { ...config.machine, type: pinned } };
  }

  async #targetBinary(env: NodeJS.ProcessEnv): Promise<QemuBinary> {
    const stored = this.source.qemuBinary;
    if (this.#spec.qemu !== undefined) return binaryFromSpec(this.#spec.qemu, env, (b) => [b]);
    if (stored !== undefined) return binaryFromState(stored, env, this.logger);
    return binaryFromSpec(this.source.argv[0] ?? 'qemu-system-x86_64', env, (b) => [b]);
  }

  async #checkMachineType(binary: QemuBinary, env: NodeJS.ProcessEnv): Promise<void> {
    const type = this.source.machineType ?? this.source.config.machine.type;
    const record = await storedBinary(binary);
    const types = await machineTypes(binary, env, `${record.size}:${record.mtimeMs}`);
    try {
      resolveMachineType(type, types, binary, true);
    } catch (error) {
      if (!(error instanceof MachineTypeError)) throw error;
      throw new LiveMigrationError(
        'machine-type',
        'starting-target',
        `QEMU ${binary.version} at ${binary.path} has no machine type '${type}' (the source's pinned type)`,
        { sourceRunning: this.source.status === 'running' },
        { cause: error },
      );
    }
  }

  async #prepareTargetRunDir(): Promise<{ path: string; created: boolean } | undefined> {
    const given = this.#spec.runDir;
    if (given === undefined) return undefined;
    const resolved = path.resolve(given);
    const exists = await stat(resolved).then(
      () => true,
      () => false,
    );
    if (!exists) await mkdir(resolved, { recursive: true, mode: 0o700 });
    const stateFile = this.#spec.stateFile;
    if (typeof stateFile === 'string')
      this.#stateFileExisted = await stat(stateFile).then(
        () => true,
        () => false,
      );
    this.#targetRunDir = { path: resolved, created: !exists };
    return this.#targetRunDir;
  }

  async #launchTarget(
    config: VmConfig,
    binary: QemuBinary,
    runDir: { path: string; created: boolean } | undefined,
    env: NodeJS.ProcessEnv,
  ): Promise<Machine> {
    const source = this.source;
    const stored = source.launchRecord;
    try {
      return await launch(config, {
        qemu: binary,
        ...(runDir !== undefined
          ? { runDir: runDir.path }
          : { runDirParent: this.#spec.runDirParent ?? path.dirname(source.runDir) }),
        ...(this.#spec.stateFile !== undefined ? { stateFile: this.#spec.stateFile } : {}),
        consoles: stored.consoles,
        assemble: stored.assemble,
        extraArgs: stored.extraArgs,
        launchTimeout: this.#spec.launchTimeout ?? stored.launchTimeout,
        incoming: true,
        env,
        logger: this.logger,
        signal: this.abort.signal,
      });
    } catch (error) {
      throw new LiveMigrationError(
        'target-launch',
        'starting-target',
        `the target QEMU did not start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
        {},
        { cause: error },
      );
    }
  }

  /** The name the source checks the target's certificate against (stream and NBD alike). */
  #tlsHostname(tls: MigrationTls, transport: { type: string; host?: string }): string {
    return (
      tls.hostname ?? (transport.type === 'tcp' ? (transport.host ?? '127.0.0.1') : 'localhost')
    );
  }

  /**
   * One `tls-creds-x509` object per side (the target the server, the source the client); the
   * target's migration parameters name it at once, the source's are returned for the caller's
   * `migrate-set-parameters`. The NBD link of a disk copy uses the same objects.
   */
  async #addTls(
    target: Machine,
    tls: MigrationTls,
    transport: MigrationTransport,
  ): Promise<Parameters> {
    const server = await addTlsCredentials(target, 'server', tls, undefined, 'setup');
    await this.#command('target', 'migrate-set-parameters', () =>
      target.qmp.execute('migrate-set-parameters', server),
    );
    this.#tls = true;
    return addTlsCredentials(
      this.source,
      'client',
      tls,
      this.#tlsHostname(tls, transport),
      'setup',
    );
  }

  /** TLS for the NBD link when the migration has it (the objects `#addTls` made). */
  #nbdTls(): NbdTls | undefined {
    const tls = this.#options.tls;
    if (tls === undefined) return undefined;
    return {
      creds: TLS_OBJECT_ID,
      hostname: this.#tlsHostname(tls, this.#options.nbd ?? { type: 'unix' }),
    };
  }

  async #command<T>(side: 'source' | 'target', what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw new LiveMigrationError(
        'command-failed',
        this.phase,
        `${what} on the ${side} failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
        {},
        { cause: error },
      );
    }
  }

  async #capabilities(m: Machine): Promise<Set<string>> {
    const list = await m.qmp.execute('query-migrate-capabilities');
    return new Set(list.map((c) => c.capability));
  }

  async #transfer(target: Machine, wasRunning: boolean): Promise<LiveMigrationResult> {
    const source = this.source;
    const options = this.#options;
    const deadlines = { ...DEFAULT_MIGRATION_DEADLINES, ...options.deadlines };
    const setupStarted = performance.now();
    const transport = options.transport ?? { type: 'unix' };
    this.#transport = transport;
    const [srcCaps, tgtCaps] = await Promise.all([
      this.#command('source', 'query-migrate-capabilities', () => this.#capabilities(source)),
      this.#command('target', 'query-migrate-capabilities', () => this.#capabilities(target)),
    ]);
    const both = (c: string) => srcCaps.has(c) && tgtCaps.has(c);
    const channels = options.multifd;
    const multifd = channels !== undefined && transport.type === 'tcp' && both('multifd');
    const sourceCaps: Capability[] = [{ capability: 'events', state: true }];
    const targetCaps: Capability[] = [{ capability: 'events', state: true }];
    if (both('return-path')) {
      sourceCaps.push({ capability: 'return-path', state: true });
      targetCaps.push({ capability: 'return-path', state: true });
    }
    // Post-copy without disks to hand over goes straight on, as migrateTo's does: one run here
    // with pause-before-switchover in front of the switch printed a counter line twice.
    const postcopyAsked = (options.postcopy ?? false) !== false;
    if (srcCaps.has('pause-before-switchover') && (!postcopyAsked || this.#disks.length > 0))
      sourceCaps.push({ capability: 'pause-before-switchover', state: true });
    if (multifd) {
      sourceCaps.push({ capability: 'multifd', state: true });
      targetCaps.push({ capability: 'multifd', state: true });
    }
    const postcopy = options.postcopy ?? false;
    if (postcopy !== false) {
      await requirePostcopy(source, srcCaps, 'source', 'setup');
      await requirePostcopy(target, tgtCaps, 'target', 'setup');
      sourceCaps.push({ capability: 'postcopy-ram', state: true });
      targetCaps.push({ capability: 'postcopy-ram', state: true });
    }
    const controller =
      options.convergence === false
        ? undefined
        : new ConvergenceController({ ...options.convergence, postcopy: postcopy === true });
    const autoConverge = controller?.autoConverge === true && srcCaps.has('auto-converge');
    if (autoConverge) sourceCaps.push({ capability: 'auto-converge', state: true });
    for (const c of options.capabilities ?? [])
      if (srcCaps.has(c.capability) && !sourceCaps.some((s) => s.capability === c.capability))
        sourceCaps.push(c);
    await this.#command('source', 'migrate-set-capabilities', () =>
      source.qmp.execute('migrate-set-capabilities', { capabilities: sourceCaps }),
    );
    await this.#command('target', 'migrate-set-capabilities', () =>
      target.qmp.execute('migrate-set-capabilities', { capabilities: targetCaps }),
    );
    const tls = options.tls !== undefined ? await this.#addTls(target, options.tls, transport) : {};
    const parameters: Parameters = {
      ...tls,
      'max-bandwidth': options.maxBandwidth ?? 16 * 1024 ** 3,
      ...(controller !== undefined
        ? { 'downtime-limit': controller.downtimeLimit }
        : options.downtimeLimit !== undefined
          ? { 'downtime-limit': options.downtimeLimit }
          : {}),
      ...(multifd ? { 'multifd-channels': channels } : {}),
      ...options.parameters,
    };
    await this.#command('source', 'migrate-set-parameters', () =>
      source.qmp.execute('migrate-set-parameters', parameters),
    );
    if (multifd)
      await this.#command('target', 'migrate-set-parameters', () =>
        target.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels }),
      );
    const uri = await this.#listen(target, transport);
    this.checkAbort();
    if (this.#disks.length > 0) {
      if (!srcCaps.has('pause-before-switchover'))
        throw new LiveMigrationError(
          'invalid-options',
          'setup',
          "disks: 'copy' needs the source's pause-before-switchover capability (QEMU ≥ 2.11)",
        );
      await this.#copyDisks(target, deadlines.mirror);
    }
    if (performance.now() - setupStarted > deadlines.setup.failAfter)
      throw new LiveMigrationError(
        'timeout',
        'setup',
        `set-up took longer than ${deadlines.setup.failAfter} ms`,
      );
    controller?.start(autoConverge);
    const startPostcopy = async () => {
      await this.#command('source', 'migrate-start-postcopy', () =>
        source.qmp.execute('migrate-start-postcopy'),
      );
    };
    // `'immediate'` (and `true` without the controller) switches at the first sample that
    // shows RAM on the wire: by then the target has read the stream's post-copy advise.
    let switchNow = postcopy === 'immediate' || (postcopy === true && controller === undefined);
    const onSample = async (sample: MigrationProgress) => {
      if (switchNow && sample.transferred > 0) {
        switchNow = false;
        await startPostcopy();
      }
      await controller?.observe(
        sample,
        autoConverge,
        async (ms) => {
          await source.qmp.execute('migrate-set-parameters', { 'downtime-limit': ms });
        },
        startPostcopy,
      );
      await options.onSample?.(sample, source);
    };
    return await this.#watch(
      target,
      wasRunning,
      uri,
      sourceCaps.map((c) => c.capability),
      deadlines,
      onSample,
      controller?.decisions ?? [],
    );
  }

  /**
   * Phase `mirroring`: the target exports its fresh images, the source mirrors every disk into
   * them; returns once every mirror is `ready` (samples with each mirror's progress meanwhile).
   */
  async #copyDisks(target: Machine, deadline: PhaseDeadline): Promise<void> {
    const source = this.source;
    const tls = this.#nbdTls();
    this.#nbd = await this.#command('target', 'NBD export', () =>
      exportTargetDisks(target, this.#disks, this.#options.nbd ?? { type: 'unix' }, tls),
    );
    const nbd = this.#nbd;
    await this.#setPhase('mirroring');
    this.checkAbort();
    try {
      await startMirrors(source, this.#disks, nbd, this.#jobs, this.#options.mirrorSpeed, tls);
    } catch (error) {
      throw new LiveMigrationError(
        'command-failed',
        'mirroring',
        `starting the disk mirrors on the source failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
        {},
        { cause: error },
      );
    }
    await untilMirrorsReady({
      source,
      target,
      disks: this.#disks,
      jobs: this.#jobs,
      signal: this.abort.signal,
      checkAbort: () => this.checkAbort(),
      interval: this.#options.progressInterval ?? 250,
      deadline,
      logger: this.logger,
      onProgress: (disks, elapsedMs) => this.hub.push(mirroringSample(disks, elapsedMs)),
    });
  }

  async #listen(target: Machine, transport: MigrationTransport): Promise<string> {
    if (transport.type === 'unix') {
      const socket = transport.path ?? path.join(target.runDir, 'migration.sock');
      await this.#command('target', 'migrate-incoming', () =>
        target.qmp.execute('migrate-incoming', { uri: `unix:${socket}` }),
      );
      return `unix:${socket}`;
    }
    const host = transport.host ?? '127.0.0.1';
    const bracketed = host.includes(':') ? `[${host}]` : host;
    await this.#command('target', 'migrate-incoming', () =>
      target.qmp.execute('migrate-incoming', { uri: `tcp:${bracketed}:${transport.port ?? 0}` }),
    );
    if (transport.port !== undefined && transport.port !== 0)
      return `tcp:${bracketed}:${transport.port}`;
    const info = await this.#command('target', 'query-migrate', () =>
      target.qmp.execute('query-migrate'),
    );
    const address = info['socket-address']?.find((a) => a.type === 'inet');
    if (address === undefined || address.type !== 'inet')
      throw new LiveMigrationError(
        'command-failed',
        'setup',
        'the target listens on TCP but query-migrate names no inet address',
      );
    return `tcp:${bracketed}:${address.port}`;
  }

  async #watch(
    target: Machine,
    wasRunning: boolean,
    uri: string,
    capabilities: readonly string[],
    deadlines: Required<MigrationDeadlines>,
    onSample: (sample: MigrationProgress) => Promise<void>,
    decisions: readonly ConvergenceDecision[],
  ): Promise<LiveMigrationResult> {
    const source = this.source;
    const options = this.#options;
    // Written by event handlers, read by the loop below.
    const seen: {
      stopMs: number | null;
      resumeMs: number | null;
      sourceStatus: string | undefined;
      targetCompleted: boolean;
      targetExit: ExitInfo | undefined;
      sourceExit: ExitInfo | undefined;
    } = {
      stopMs: null,
      resumeMs: null,
      sourceStatus: undefined,
      targetCompleted: false,
      targetExit: undefined,
      sourceExit: undefined,
    };
    let lastProgress: MigrationProgress | null = null;
    let wake: () => void = () => {};
    const changed = () => wake();
    let nextSample = performance.now();
    const offs = [
      source.qmp.on('STOP', (e) => {
        seen.stopMs ??= eventMs(e);
        changed();
      }),
      source.qmp.on('MIGRATION', (e) => {
        seen.sourceStatus = e.data.status;
        if (e.data.status === 'postcopy-active') this.#postcopy = true;
        changed();
      }),
      // A new pass over RAM: sample at once, so `remaining` is what the last pass left dirty.
      source.qmp.on('MIGRATION_PASS', () => {
        nextSample = 0;
        changed();
      }),
      target.qmp.on('MIGRATION', (e) => {
        if (e.data.status === 'completed') seen.targetCompleted = true;
        changed();
      }),
      target.qmp.on('RESUME', (e) => {
        seen.resumeMs ??= eventMs(e);
        changed();
      }),
    ];
    void target.exited.then((exit) => {
      seen.targetExit = exit;
      changed();
    });
    void source.exited.then((exit) => {
      seen.sourceExit = exit;
      changed();
    });
    const abortWake = () => changed();
    this.abort.signal.addEventListener('abort', abortWake);
    const started = performance.now();
    const clock = new PhaseClock();
    const interval = options.progressInterval ?? 250;
    let handedOver = false;
    try {
      await this.#setPhase('transferring');
      await this.#command('source', 'migrate', () => source.qmp.execute('migrate', { uri }));
      const targetExited = (exit: ExitInfo) =>
        new LiveMigrationError(
          'target-exited',
          this.phase,
          `the target QEMU exited before it ran the guest (${exit.signal ?? `exit code ${exit.code}`})`,
          { exitCode: exit.code, signal: exit.signal, stderr: target.stderr() },
        );
      let sourceGoneNoted = false;
      for (;;) {
        this.checkAbort();
        if (seen.sourceExit !== undefined) {
          // With return-path the source's `completed` waited for the target's end of the load:
          // the target holds the whole guest and is the VM once it runs; the source only ended
          // sooner than `finishing` would have ended it.
          const handedOff =
            this.phase === 'confirming' &&
            !this.#postcopy &&
            seen.sourceStatus === 'completed' &&
            (capabilities.includes('return-path') || seen.targetCompleted);
          if (!handedOff)
            throw new LiveMigrationError(
              'source-exited',
              this.phase,
              `the source QEMU exited (${seen.sourceExit.signal ?? `exit code ${seen.sourceExit.code}`})`,
            );
          if (!sourceGoneNoted) {
            sourceGoneNoted = true;
            this.logger.warn(
              `live migration: the source QEMU exited (${seen.sourceExit.signal ?? `exit code ${seen.sourceExit.code}`}) after it sent the whole state; waiting for the target to run the guest`,
            );
          }
        }
        if (seen.targetExit !== undefined) throw targetExited(seen.targetExit);
        if (seen.sourceStatus === 'postcopy-paused') {
          // Events from here on (postcopy-recover, postcopy-active, completed) say how it goes.
          seen.sourceStatus = undefined;
          await this.#recover(target, async () => {
            const now = performance.now();
            const info = await sampleMigration(source, interval, this.logger);
            if (info === undefined) return;
            lastProgress = {
              ...progressFrom(info, this.phase, now - started),
              ...(this.#recovery !== undefined ? { recovery: this.#recovery } : {}),
            };
            this.hub.push(lastProgress);
          });
          clock.restart();
          continue;
        }
        if (seen.sourceStatus === 'failed' || seen.sourceStatus === 'cancelled') {
          // Only for QEMU's error-desc: without it the status alone is reported.
          const info = await source.qmp.execute('query-migrate').catch(() => undefined);
          // A target that refused the stream exits: give its exit and stderr a moment to arrive.
          let grace: NodeJS.Timeout | undefined;
          const exit = await Promise.race([
            target.exited,
            new Promise<undefined>((r) => {
              grace = setTimeout(() => r(undefined), 2000);
            }),
          ]).finally(() => clearTimeout(grace));
          throw new LiveMigrationError(
            'failed',
            this.phase,
            info?.['error-desc'] ?? `the source reported '${seen.sourceStatus}'`,
            {
              stderr: target.stderr(),
              ...(exit !== undefined ? { exitCode: exit.code, signal: exit.signal } : {}),
            },
          );
        }
        if (seen.sourceStatus === 'pre-switchover' && !handedOver) {
          handedOver = true;
          await this.#setPhase('switchover');
          clock.restart();
          if (this.#disks.length > 0)
            await this.#command('source', 'ending the disk mirrors', () =>
              endMirrors(source, this.#disks, this.#jobs),
            );
          if (options.beforeSwitchover !== undefined) {
            const info = await source.qmp.execute('query-migrate');
            const aborted = new Promise<void>((resolve) => {
              if (this.abort.signal.aborted) resolve();
              this.abort.signal.addEventListener('abort', () => resolve(), { once: true });
            });
            await Promise.race([
              options.beforeSwitchover({
                source,
                target,
                info,
                disks: this.#disks,
                nbd: this.#nbd,
              }),
              aborted,
            ]);
          }
          // The last point where a cancel leaves the source whole: an abort during the phase
          // change (an onPhase('switchover') handler), the mirrors' end or the hook stops here.
          this.checkAbort();
          if (this.#disks.length > 0)
            await this.#command('target', 'removing the NBD exports', () =>
              removeExports(target, this.#disks),
            );
          await this.#command('source', 'migrate-continue', () =>
            source.qmp.execute('migrate-continue', { state: 'pre-switchover' }),
          );
          continue;
        }
        // Post-copy: the target runs the guest from here on; a relaunch of the source is refused.
        if (this.#postcopy && !handedOver) {
          handedOver = true;
          clock.restart();
          await this.#setPhase('switchover');
        }
        if (this.#postcopy && this.phase === 'switchover') await this.#setPhase('confirming');
        if (seen.sourceStatus === 'completed' && this.phase !== 'confirming') {
          // Only a hand-over without pre-switchover starts the switch-over deadline here.
          if (!handedOver) clock.restart();
          handedOver = true;
          await this.#setPhase('confirming');
        }
        const targetRuns = wasRunning ? seen.resumeMs !== null : seen.targetCompleted;
        if (targetRuns && seen.sourceStatus === 'completed') {
          // A target killed here fails the query: its exit, not the lost connection, is the error.
          const status = await target.qmp.execute('query-status').then(
            (s) => s.status,
            async (error: unknown) => {
              const exit = await within(target.exited, 2000);
              throw exit !== undefined ? targetExited(exit) : error;
            },
          );
          if (status === (wasRunning ? 'running' : 'paused')) break;
        }
        // Deadlines: warn first (QEMU's main loop can be busy for seconds), fail at the hard one.
        const now = performance.now();
        // Post-copy copies the rest of RAM after the hand-over: the transfer deadline applies.
        const deadline = handedOver && !this.#postcopy ? deadlines.switchover : deadlines.transfer;
        clock.check(this.phase, deadline, this.logger, lastProgress);
        if ((!handedOver || this.#postcopy) && now >= nextSample) {
          nextSample = now + interval;
          const info = await sampleMigration(source, interval, this.logger);
          if (info !== undefined && info.status !== undefined && ACTIVE.has(info.status)) {
            const disks =
              this.#disks.length > 0
                ? await mirrorProgress(source, this.#disks).catch(() => undefined)
                : undefined;
            lastProgress = {
              ...progressFrom(info, this.phase, now - started),
              ...(disks !== undefined ? { disks } : {}),
            };
            this.hub.push(lastProgress);
            if (!handedOver) await onSample(lastProgress);
          }
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(
            resolve,
            handedOver && !this.#postcopy ? 50 : Math.max(1, nextSample - performance.now()),
          );
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = () => {};
      }
      await this.#setPhase('finishing');
      // Only for the numbers in the result (null without them); the target already runs.
      const final = await source.qmp.execute('query-migrate').catch(() => undefined);
      // The target runs the guest: the source QEMU has nothing left to do.
      await source.recordMigration({
        role: 'source',
        phase: 'done',
        peer: { runDir: target.runDir, stateFile: target.stateFile ?? null, createdRunDir: false },
        startedAt: this.startedAt,
      });
      await source.stop();
      await target.recordMigration(undefined);
      this.phase = 'done';
      return {
        machine: target,
        uri,
        capabilities,
        running: wasRunning,
        downtimeMs:
          seen.stopMs !== null && seen.resumeMs !== null ? seen.resumeMs - seen.stopMs : null,
        qemuDowntimeMs: final?.downtime ?? null,
        totalTimeMs: final?.['total-time'] ?? null,
        lastProgress,
        decisions: [...decisions],
        postcopy: this.#postcopy,
        recoveries: this.#recoveries,
      };
    } finally {
      this.abort.signal.removeEventListener('abort', abortWake);
      for (const off of offs) off();
    }
  }

  /**
   * The link broke during post-copy: records `postcopy-paused`, then recovers over a fresh
   * channel (`recoverLink`, phase `recovering` during each attempt) and goes back to
   * `confirming`. Every attempt failing (or recovery off): `postcopy-paused`, both QEMUs alive.
   */
  async #recover(target: Machine, sample: () => Promise<void>): Promise<void> {
    const recovery = this.#options.postcopyRecovery;
    this.#recovery = undefined;
    await this.#setPhase('postcopy-paused');
    await sample();
    try {
      if (recovery === false)
        throw new LiveMigrationError(
          'postcopy-paused',
          'postcopy-paused',
          `the link broke during post-copy and recovery is off; ${whoHoldsTheTruth(target)}. Recover with recoverPostcopy(source, target)`,
          { sourceRunning: false, peerStateFile: target.stateFile ?? null },
        );
      await recoverLink(this.source, target, this.#transport, recovery ?? {}, {
        attempt: async (attempt, of) => {
          this.#recovery = {
            attempt,
            of,
            ...(this.#recovery?.lastError !== undefined
              ? { lastError: this.#recovery.lastError }
              : {}),
          };
          await this.#setPhase('recovering');
          await sample();
        },
        failed: async (attempt, desc) => {
          this.#recovery = { attempt, of: this.#recovery?.of ?? attempt, lastError: desc };
          this.logger.warn(`live migration: post-copy recovery attempt ${attempt} failed`, desc);
          await sample();
        },
      });
    } catch (error) {
      if (isLiveMigrationError(error) && error.reason === 'postcopy-paused')
        await this.#setPhase('postcopy-paused');
      throw error;
    }
    this.#recoveries += 1;
    this.#recovery = undefined;
    await this.#setPhase('confirming');
    await sample();
  }

  /**
   * Undoes everything after a failure in any phase before `finishing`: cancels the source's
   * migration, makes its guest run again if it ran before, kills the target and removes its
   * files, clears the state files' record. Returns the error to throw (with `sourceRunning`).
   */
  async #rollBack(error: unknown, wasRunning: boolean): Promise<unknown> {
    const source = this.source;
    const target = this.#target;
    const failure: LiveMigrationError = isLiveMigrationError(error)
      ? error
      : new LiveMigrationError(
          this.abort.signal.aborted ? 'aborted' : 'command-failed',
          this.phase,
          error instanceof Error ? error.message : String(error),
          {},
          { cause: error },
        );
    // A paused post-copy that could not be recovered: both QEMUs stay, the records say so.
    if (failure.reason === 'postcopy-paused') return failure;
    if (this.#postcopy)
      // Nothing is undone: both QEMUs stay as they are and the state files keep `confirming`
      // (a relaunch of the source is refused, one of the target takes it as the VM).
      return new LiveMigrationError(
        'postcopy-failed',
        this.phase,
        `${failure.desc}. The migration had switched to post-copy: the target (${target?.stateFile ?? target?.runDir ?? 'gone'}) holds the guest's newest RAM and device state, the source only a stale copy; the source stays paused (resuming it would run an old state beside the target's)`,
        { sourceRunning: false },
        { cause: failure },
      );
    const problems: unknown[] = [];
    const alive = () => source.status === 'running';
    if (alive()) {
      try {
        await cancelSourceMigration(source);
      } catch (e) {
        problems.push(e);
      }
    }
    // The mirrors and NBD client nodes go while the target's NBD server still answers (a
    // mirror cancelled against a server that vanished can leave the source waiting).
    for (const job of this.#jobs) job.detach();
    if (this.#disks.length > 0 && alive()) {
      await sweepSource(source).catch((e: unknown) => problems.push(e));
    }
    // After the NBD client nodes that used it.
    if (this.#tls && alive())
      await removeTlsCredentials(source).catch((e: unknown) => problems.push(e));
    if (target !== undefined) {
      // The target dies first: a source resumed while a target still runs the guest would be
      // two copies of one VM writing the same disks.
      await target.kill().catch((e: unknown) => problems.push(e));
    }

    let sourceRunning: boolean | null = null;
    if (alive()) {
      try {
        const status = await source.qmp.execute('query-status');
        if (wasRunning && !status.running) await source.qmp.execute('cont');
        sourceRunning = (await source.qmp.execute('query-status')).running;
      } catch (e) {
        problems.push(e);
      }
    } else sourceRunning = false;
    await this.#removeTargetFiles(target).catch((e: unknown) => problems.push(e));
    await removeMade(this.#made).catch((e: unknown) => problems.push(e));
    await source.recordMigration(undefined).catch((e: unknown) => problems.push(e));
    if (problems.length > 0)
      this.logger.warn('live migration: the roll-back met problems', problems);
    return failure.withSource(sourceRunning);
  }

  async #removeTargetFiles(target: Machine | undefined): Promise<void> {
    const dir = this.#targetRunDir;
    // A state file the caller placed outside the run dir (a VM directory's state.json beside
    // its run/) goes too, whether or not we created the run dir.
    const outside = this.#spec.stateFile;
    if (
      typeof outside === 'string' &&
      !this.#stateFileExisted &&
      (dir === undefined || path.dirname(path.resolve(outside)) !== dir.path)
    )
      for (const f of [outside, `${outside}.bak`]) await rm(f, { force: true });
    if (dir?.created) {
      await rm(dir.path, { recursive: true, force: true });
      return;
    }
    if (target === undefined) return;
    // A temporary run dir went with target.kill(); one the caller gave and that existed
    // keeps everything but what the target put there.
    if (dir === undefined) return;
    for (const name of await readdir(dir.path)) {
      if (
        name === 'state.json' ||
        name.startsWith('state.json.') ||
        name.startsWith('.state.json.') ||
        name === 'migration.sock' ||
        name === 'nbd.sock' ||
        name === 'qemu.pid' ||
        name === 'qemu.journal' ||
        name === LOCK_FILE
      )
        await rm(path.join(dir.path, name), { force: true });
    }
    if (target.stateFile !== undefined && path.dirname(target.stateFile) !== dir.path)
      for (const f of [target.stateFile, `${target.stateFile}.bak`]) await rm(f, { force: true });
  }
}

export type { LiveMigrationFailure };
