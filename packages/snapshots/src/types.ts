/**
 * The public shapes of `@qmpkit/snapshots`: the strategy interface, options, results,
 * progress events and snapshot records.
 */
import type { ConsoleState, QemuSpec } from '@qmpkit/machine';
import type { LoadCompatibility } from './compat.js';

/** The three ways QEMU 7.2 can snapshot a running VM. */
export type StrategyKind = 'internal-hmp' | 'internal-jobs' | 'external';

/** Steps of a save, load or delete, in the order they happen (not all apply to every strategy). */
export type SnapshotPhase =
  | 'prepare'
  | 'pause'
  | 'overlay'
  | 'freeze'
  | 'switch'
  | 'thaw'
  | 'save'
  | 'saved'
  | 'commit'
  | 'resume'
  | 'verify'
  | 'restart'
  | 'load'
  | 'delete'
  | 'merge'
  | 'checksum'
  | 'done';

/** One progress report. `bytes` counts state bytes written (save) or read (load) so far. */
export interface SnapshotProgress {
  readonly phase: SnapshotPhase;
  readonly bytes: number;
  /** Expected total, when known (RAM size for a save, the state file's size for a load). */
  readonly totalBytes: number | undefined;
  /** 0–100, when the total is known. */
  readonly percent: number | undefined;
  /** Milliseconds since the operation started. */
  readonly elapsedMs: number;
}

export interface SaveOptions {
  /** Replace an existing snapshot of the same name (default: `SnapshotExistsError`). */
  readonly overwrite?: boolean;
  /** Aborts the save: the VM is resumed (if it was running) and the store is left unchanged. */
  readonly signal?: AbortSignal;
  /** Deadline in ms for the whole save (default: 30 s + 1 s per 20 MiB of RAM). */
  readonly timeout?: number;
  /** Free text kept in the manifest. */
  readonly description?: string;
  /** Called synchronously for every progress report (the task is also an async iterable). */
  readonly onProgress?: (progress: SnapshotProgress) => void;
  /**
   * External only: save RAM with the `background-snapshot` migration capability, so the
   * guest pauses only while the overlays are switched (milliseconds) and runs during the
   * save. The state is exactly the moment of the pause.
   */
  readonly live?: boolean;
  /**
   * External only: a template for copy-on-write clones (`cloneSnapshot`). Where the guest RAM
   * is a `memory-backend-file` with `share: true` and the live schema has the
   * `x-ignore-shared` capability, the RAM is left out of the stream and its file is copied
   * into the store while the guest is paused; clones then map that copy privately instead
   * of loading RAM from the stream. Otherwise the save falls back to the ordinary stream and
   * `SaveResult.sharedRam` says why. Implies `portable`; refused with `live`.
   */
  readonly sharedRam?: boolean;
  /**
   * Internal jobs only: the qcow2 nodes to snapshot (default: every writable qcow2 node the
   * block graph model lists as snapshottable) and the node that holds the VM state
   * (default: the first of them).
   */
  readonly devices?: readonly string[];
  readonly vmstate?: string;
  /**
   * External only: write the VM state as the sequential migration stream every QEMU loads
   * (7.2 included), even where this QEMU has `mapped-ram` (≥ 9.0), whose files load only on
   * a QEMU with `mapped-ram`. Use it for a snapshot that must load on an older QEMU.
   */
  readonly portable?: boolean;
  /**
   * External only, where the live schema has `mapped-ram` and `portable` is not set: how the
   * state file is written (defaults: `DEFAULT_MAPPED_RAM_SAVE`).
   */
  readonly mappedRam?: MappedRamTuning;
  /**
   * External only: snapshot the disks and nothing else — qcow2 overlays for every writable
   * disk in one `transaction`, no RAM or device state, and the guest keeps running. Such a
   * snapshot loads as a cold boot from its disks (`consistency` says how clean they are).
   */
  readonly diskOnly?: boolean;
  /**
   * Disk-only saves: freezes the guest's filesystems around the overlay switch (freeze →
   * transaction → thaw; the thaw always runs). Default: the guest agent of the VM when its
   * configuration has one (a `virtserialport` named `org.qemu.guest_agent.0` on a UNIX
   * socket chardev the library can connect to). `false`: no freeze. A `GuestAgent` of
   * `@qmpkit/guest-agent` fits; pass it when your code is connected to the agent already
   * (the chardev takes one client at a time).
   */
  readonly quiesce?: QuiesceHook | false;
  /**
   * Disk-only saves: refuse (`SnapshotQuiesceError`) instead of taking a crash-consistent
   * snapshot when no agent is there or the freeze fails. Default false.
   */
  readonly requireQuiesce?: boolean;
  /**
   * Disk-only saves: milliseconds the guest may stay frozen (default 10 000). When the
   * overlay switch is not done by then, the filesystems are thawed anyway and the save fails
   * with `SnapshotQuiesceError` reason `timeout`.
   */
  readonly quiesceTimeout?: number;
  /**
   * Disk-only saves: called after the freeze (or its failure) and before the overlay switch,
   * inside the `quiesceTimeout` window — for work that must see the guest's disks quiet
   * (snapshotting other storage at the same instant).
   */
  readonly onFrozen?: () => Promise<void> | void;
}

/**
 * Freezes and thaws the guest's filesystems for a disk-only snapshot. `GuestAgent` of
 * `@qmpkit/guest-agent` fits this shape, so the snapshot package needs no agent of its own.
 */
export interface QuiesceHook {
  /** Freezes; resolves with the number of filesystems frozen. */
  freeze(): Promise<number>;
  /** Thaws; resolves with the number thawed. Called after every freeze attempt. */
  thaw(): Promise<number>;
}

/**
 * How clean a disk-only snapshot's disks are: `filesystem` (frozen by the guest's agent:
 * every filesystem is consistent, as after a clean unmount) or `crash` (as after a power cut:
 * journals replay on boot, recent writes may be missing).
 */
export type SnapshotConsistency = 'filesystem' | 'crash';

/**
 * How a `mapped-ram` state file is written or read. `multifdChannels: 0` means no multifd
 * (one thread; QEMU then ignores `directIo`). `directIo` opens the file with `O_DIRECT` (QEMU
 * ≥ 9.1, multifd only); it is used only where the file system accepts `O_DIRECT` (probed).
 */
export interface MappedRamTuning {
  readonly multifdChannels?: number;
  readonly directIo?: boolean;
}

/**
 * The encoding of an external snapshot's state file, as recorded in the manifest (absent in
 * manifests written before it was recorded: those are `stream`). `mapped-ram` records the
 * multifd channels and whether `O_DIRECT` was used when it was written; a load needs only
 * `mapped-ram` itself to match (it picks its own channels and direct I/O).
 */
export type StateEncoding =
  | { readonly format: 'stream' }
  | {
      readonly format: 'mapped-ram';
      readonly multifdChannels: number;
      readonly directIo: boolean;
    };

export interface LoadOptions {
  readonly signal?: AbortSignal;
  /** Deadline in ms (default: 30 s + 1 s per 20 MiB of RAM). */
  readonly timeout?: number;
  readonly onProgress?: (progress: SnapshotProgress) => void;
  /**
   * External only, before the VM is touched. Always: size, `QEVM` magic and stream version.
   * `full` (default): also the SHA-256 of the whole file — QEMU 7.2 loads a stream with a
   * flipped RAM byte without complaint, so this is the only check that catches every
   * corruption (it costs about 1 s per GiB here). `auto`: the SHA-256 only when the file's
   * inode, mtime or ctime differ from right after the save (any write through the file
   * system changes its ctime, which user space cannot set back); damage below the file
   * system (bit rot) goes unnoticed. `quick`: no SHA-256.
   */
  readonly verify?: 'full' | 'auto' | 'quick';
  /**
   * `true`: start the guest after the load; `false`: leave it paused; default: as it was at
   * save time.
   */
  readonly resume?: boolean;
  /**
   * Load on this QEMU instead of the VM's current one (a `QemuBinary`, a path, a release in
   * the cache such as `'10.0'`, or a name on `PATH`); the VM runs on it from then on. It is
   * checked before anything is touched (`SnapshotCannotLoadError`: `binary-missing`,
   * `not-qemu`, `module-dir-missing`, `machine-type-missing`).
   */
  readonly qemu?: QemuSpec;
  /**
   * Where a release name in `qemu` is looked up and where compatibility verdicts are cached
   * (`<cacheDir>/compat`; default `defaultCacheDir()`).
   */
  readonly cacheDir?: string;
  /**
   * Skip the compatibility check of a load on another binary than the save (see
   * `LoadResult.compat`). The checks of the binary, machine type and configuration stay.
   */
  readonly force?: boolean;
  /** Called with each warning (they are in `LoadResult.warnings` too). */
  readonly onWarning?: (message: string) => void;
  /**
   * External, `mapped-ram` state files only: how the file is read (defaults:
   * `DEFAULT_MAPPED_RAM_LOAD`).
   */
  readonly mappedRam?: MappedRamTuning;
}

export interface DeleteOptions {
  readonly signal?: AbortSignal;
}

/** The recorded facts about one snapshot (what `list()` returns). */
export interface SnapshotInfo {
  readonly id: string;
  readonly name: string;
  readonly strategy: StrategyKind;
  /** The snapshot this one was taken after (the one last saved or loaded), or null. */
  readonly parent: string | null;
  readonly createdAt: string;
  readonly description: string | undefined;
  /** `7.2.22` */
  readonly qemuVersion: string;
  /** The versioned machine type, e.g. `pc-i440fx-7.2` (what QEMU reports, not an alias). */
  readonly machineType: string;
  /** SHA-256 of the guest-visible device configuration (see `deviceConfigHash`). */
  readonly configHash: string;
  /**
   * The QEMU binary that saved it (path and `--version`), as the machine's state file
   * records it. Absent in manifests written before it was recorded.
   */
  readonly qemuBinary?: { readonly path: string; readonly version: string };
  /** The machine state file format the VM had (`qmpkit-machine/state` version), when known. */
  readonly stateFormat?: { readonly format: string; readonly version: number };
  readonly memoryBytes: number;
  /** vCPUs at the save (absent in manifests written before it was recorded). */
  readonly cpus?: number;
  /** Guest-visible devices at the save as `driver#id`, in order (absent in older manifests). */
  readonly deviceSet?: readonly string[];
  /**
   * Key of the saving binary's vmstate dump kept in the store (`vmstate/<key>.json`) for a
   * static check when that binary is gone; absent when none was kept.
   */
  readonly vmstateKey?: string;
  /** Size of the saved VM state (state file, or the internal snapshot's vm-state-size). */
  readonly vmStateBytes: number;
  /** Whether the guest was running when the snapshot was taken (it is resumed after a load). */
  readonly wasRunning: boolean;
  /** External: the state file and its checksum. */
  readonly stateFile:
    | {
        readonly path: string;
        readonly bytes: number;
        readonly sha256: string;
        /** `stat` of the file right after it was written (inode, mtime, ctime in ms). */
        readonly written?: {
          readonly ino: number;
          readonly mtimeMs: number;
          readonly ctimeMs: number;
        };
        /** How the file is encoded; absent = `stream` (manifests written before it was recorded). */
        readonly encoding?: StateEncoding;
      }
    | undefined;
  /** External: the frozen image files holding the disks at the save point. */
  readonly layers: readonly string[];
  /**
   * External, saved with `sharedRam`: the copy of the guest RAM file (memory backend
   * `backend`) the state stream leaves out (`x-ignore-shared`). Clones map it privately.
   */
  readonly ramFile?: RamFileRecord;
  /** Internal: the snapshot tag in the qcow2 images. */
  readonly tag: string | undefined;
  /** Whether it was saved in live mode (background-snapshot). */
  readonly live: boolean;
  /** External: only the disks were saved (no state file); a load boots from them. */
  readonly diskOnly?: boolean;
  /** Disk-only snapshots: whether the guest's filesystems were frozen for it. */
  readonly consistency?: SnapshotConsistency;
}

export interface SnapshotTimings {
  /** From the call to the result. */
  readonly totalMs: number;
  /**
   * Guest pause, from QEMU's STOP to RESUME event timestamps (undefined when the guest was
   * not running before, or stays paused). For an external load, from the moment the old
   * QEMU is told to quit to the new QEMU's RESUME (both wall clock).
   */
  readonly downtimeMs: number | undefined;
  /** Milliseconds spent in each phase. */
  readonly phases: Readonly<Partial<Record<SnapshotPhase, number>>>;
}

export interface SaveResult {
  readonly snapshot: SnapshotInfo;
  readonly strategy: StrategyKind;
  readonly timings: SnapshotTimings;
  /** VM state bytes written (state file, or vm-state-size for internal snapshots). */
  readonly bytesWritten: number;
  /** Only when `sharedRam` was asked for: whether the RAM file was used, else why not. */
  readonly sharedRam?: SharedRamOutcome;
}

export interface LoadResult {
  readonly snapshot: SnapshotInfo;
  readonly strategy: StrategyKind;
  readonly timings: SnapshotTimings;
  /** State bytes read (external: the state file; internal: vm-state-size). */
  readonly bytesRead: number;
  /** External: how the state file was checked (`sha256`, `unchanged` since the save, `header`). */
  readonly verified: 'sha256' | 'unchanged' | 'header' | undefined;
  /**
   * The compatibility check of a load on another binary than the save (undefined on the
   * saving binary, or when the manifest names none).
   */
  readonly compat?: LoadCompatibility;
  /** Warnings of the load (e.g. sections the static vmstate check flags; no probe ran). */
  readonly warnings: readonly string[];
}

export interface DeleteResult {
  readonly snapshot: SnapshotInfo;
  readonly strategy: StrategyKind;
  /** External: layers merged into their children (`block-stream` / `qemu-img rebase`). */
  readonly merged: readonly string[];
  /** Files removed. */
  readonly removed: readonly string[];
  readonly totalMs: number;
}

/**
 * A running save or load: await it for the result, iterate it for progress, or abort it.
 * ```ts
 * const task = strategy.save('before-test');
 * for await (const p of task) console.log(p.phase, p.percent);
 * const result = await task;
 * ```
 */
export interface SnapshotTask<T> extends PromiseLike<T>, AsyncIterable<SnapshotProgress> {
  /** The result as a real promise (`then` on the task is the same). */
  readonly result: Promise<T>;
  /** Aborts like the `signal` option would. */
  abort(reason?: unknown): void;
}

/** One interface, three implementations (see `chooseStrategy`). */
export interface SnapshotStrategy {
  readonly kind: StrategyKind;
  save(name: string, options?: SaveOptions): SnapshotTask<SaveResult>;
  load(name: string, options?: LoadOptions): SnapshotTask<LoadResult>;
  delete(name: string, options?: DeleteOptions): Promise<DeleteResult>;
  /** This strategy's snapshots in the store, oldest first. */
  list(): Promise<SnapshotInfo[]>;
}

/** Per-snapshot data kept in the manifest besides `SnapshotInfo`. */
export interface SnapshotRecord extends SnapshotInfo {
  /** Unread console text at the save point, restored by `load`. */
  readonly consoles: readonly ConsoleState[];
  /**
   * External: the VM configuration at the save point (a `qmpkit-devices` document); its
   * active layers are the frozen `layers`.
   */
  readonly config: unknown;
  /** Internal jobs: the `devices` and `vmstate` nodes of `snapshot-save`. */
  readonly devices?: readonly string[];
  readonly vmstate?: string;
}

/** The guest RAM file of a `sharedRam` snapshot (see `SnapshotInfo.ramFile`). */
export interface RamFileRecord {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
  /** The id of the `memory-backend-file` object it backs. */
  readonly backend: string;
}

/**
 * Why a `sharedRam` save wrote RAM into the stream after all:
 * - `no-memory-backend`: the machine's RAM is not a `memory-backend` object;
 * - `not-file-backed`: that backend is not a `memory-backend-file` with a `mem-path`;
 * - `not-shared`: the file backend is mapped `share: false` (QEMU would not skip it);
 * - `no-x-ignore-shared`: the live schema has no `x-ignore-shared` migration capability.
 */
export type SharedRamFallbackReason =
  | 'no-memory-backend'
  | 'not-file-backed'
  | 'not-shared'
  | 'no-x-ignore-shared';

export type SharedRamOutcome =
  | { readonly used: true; readonly ramFile: RamFileRecord }
  | { readonly used: false; readonly reason: SharedRamFallbackReason; readonly detail: string };
