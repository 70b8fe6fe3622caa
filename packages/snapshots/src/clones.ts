/**
 * Clones: N independent VMs started from one saved external snapshot (test farms fan one
 * prepared VM out into many; Kata calls it VM templating).
 *
 * Every clone gets its own directory `<into>/<prefix>-<n>`:
 * ```
 * clone.json   what the clone starts from (`prepareClones` writes it, `startPreparedClone`
 *              reads it, in this process or in another: the CLI's supervisors)
 * state.json   @qmpkit/machine's state file (a later `Machine.relaunch` cold-boots the disks)
 * run/         the machine's run directory
 * disks/       one fresh qcow2 overlay per writable disk, over the snapshot's frozen layers
 * qmp.sock     a QMP monitor of its own (beside the machine's private one; `cloneSnapshot` only)
 * ram          its own RAM file: a copy of the snapshot's (`ram: 'copy'`), or where the
 *              saved VM's RAM was a memory-backend-file and RAM comes from the stream
 * ```
 * and is a separate `Machine`: stopping one leaves the others running. The snapshot's files
 * are never written: its layers are opened read-only under the overlays, its state file is
 * inherited read-only, and its RAM file (snapshots saved with `sharedRam`) is mapped
 * `MAP_PRIVATE` (`share: false`), so each clone's RAM writes stay in its own memory.
 *
 * Everything that can be refused is refused before anything is created; when a clone fails
 * to start or load, every clone of the call is stopped and every directory it created is
 * removed (`SnapshotCloneError`).
 */
import { lstat, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  blockGraph,
  type ConfigDocument,
  chainNodes,
  fromDocument,
  insertOverlay,
  layerFile,
  toDocument,
  type VmConfig,
  withReadOnly,
} from '@qmpkit/devices';
import {
  type ConsoleState,
  launch,
  type Machine,
  migrateIncoming,
  type QemuSpec,
  runQemuImg,
  setUpMigration,
} from '@qmpkit/machine';
import { toInfo } from './base.js';
import { SnapshotCloneError, SnapshotIntegrityError, SnapshotNotFoundError } from './errors.js';
import { applyEncoding, fileUriFor, mappedRamSupport, recordedEncoding } from './mapped-ram.js';
import { copyRamFile, hasIgnoreShared, privateRamConfig, verifyRamFile } from './shared-ram.js';
import { verifyStateFile } from './statefile.js';
import { configFiles, SnapshotStore } from './store.js';
import type { RamFileRecord, SnapshotInfo, SnapshotRecord, StateEncoding } from './types.js';
import { defaultTimeout } from './vm.js';

/** UNIX socket paths longer than this do not fit `sockaddr_un` on Linux. */
const SOCKET_PATH_MAX = 107;

export interface CloneOptions {
  /** How many clones (an integer ≥ 1). */
  readonly count: number;
  /** The directory that holds the clone directories (created 0700 when missing). */
  readonly into: string;
  /** Clone directories are `<prefix>-<n>`, n = 1…count (default: the snapshot's name). */
  readonly prefix?: string;
  /** The QEMU to run (default: the binary that saved the snapshot, as recorded). */
  readonly qemu?: QemuSpec;
  /** Where a release name in `qemu` is looked up. */
  readonly cacheDir?: string;
  /** Chardev ids to keep as consoles (their unread text at the save is restored). */
  readonly consoles?: readonly string[];
  /** `qemu-img` for the overlays (default `qemu-img` on `PATH`). */
  readonly qemuImg?: string;
  /**
   * RAM of a snapshot saved with `sharedRam`: `shared` (default) maps its RAM file privately
   * in every clone (copy-on-write); `copy` gives each clone its own copy of the file first
   * (the copying baseline). Snapshots without a RAM file always load RAM from the stream.
   */
  readonly ram?: 'shared' | 'copy';
  /** Resume the guests (default: when the snapshot was taken of a running guest). */
  readonly resume?: boolean;
  /** How many clones start at once (default 4). */
  readonly concurrency?: number;
  /** Milliseconds each clone may take to load (default: as a load of the snapshot). */
  readonly timeout?: number;
  /** `full` (default) hashes the state and RAM files once before any clone starts. */
  readonly verify?: 'full' | 'size';
}

export interface Clone {
  /** 1…count. */
  readonly index: number;
  readonly dir: string;
  /** A QMP monitor of this clone's own (UNIX socket, 0700 directory). */
  readonly qmpSocket: string;
  readonly stateFile: string;
  readonly machine: Machine;
}

/**
 * How the clones got their RAM: `private-map`, the snapshot's RAM file mapped copy-on-write;
 * `file-copy`, each its own copy of that file; `stream`, loaded from the state file.
 */
export type CloneRam = 'private-map' | 'file-copy' | 'stream';

export interface CloneSet {
  readonly snapshot: SnapshotInfo;
  readonly ram: CloneRam;
  readonly clones: readonly Clone[];
  /** From the call until every clone runs (or is loaded and paused). */
  readonly totalMs: number;
}

/** What every clone is started from (checked once). */
interface ClonePlan {
  readonly record: SnapshotRecord;
  readonly saved: VmConfig;
  readonly statePath: string;
  readonly ram: CloneRam;
  readonly ramFile: RamFileRecord | undefined;
  readonly options: PrepareCloneOptions;
  readonly timeout: number;
  readonly resume: boolean;
}

function cloneDirs(into: string, prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => path.join(into, `${prefix}-${i + 1}`));
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** What `prepareClones` takes: `CloneOptions` without what only a running clone needs. */
export type PrepareCloneOptions = Omit<
  CloneOptions,
  'qemu' | 'cacheDir' | 'consoles' | 'concurrency'
> & {
  /** The QEMU recorded in each `clone.json` (default: the binary that saved the snapshot). */
  readonly qemu?: string;
};

/** A clone directory made ready by `prepareClones`: overlays, RAM file, and `clone.json`. */
export interface PreparedClone {
  /** 1…count. */
  readonly index: number;
  readonly dir: string;
  /** `<dir>/clone.json`: what `startPreparedClone` (in this process or another) starts from. */
  readonly spec: string;
}

export interface PreparedCloneSet {
  readonly snapshot: SnapshotInfo;
  readonly ram: CloneRam;
  readonly clones: readonly PreparedClone[];
  /**
   * Removes every directory the call created (`into` too when it created it). Stop the
   * clones started from them first.
   */
  discard(): Promise<void>;
}

/** `clone.json`: one prepared clone, readable by another process. */
interface CloneSpec {
  readonly format: typeof SPEC_FORMAT;
  readonly version: typeof SPEC_VERSION;
  readonly snapshot: string;
  readonly index: number;
  readonly dir: string;
  /** The clone's configuration: overlays over the frozen layers, its RAM, versioned machine type. */
  readonly config: ConfigDocument;
  /** The QEMU to run unless the starter names one. */
  readonly qemu: string;
  readonly state: { readonly path: string; readonly encoding: StateEncoding };
  readonly ram: CloneRam;
  /** The consoles' unread text at the save (restored for the consoles the clone keeps). */
  readonly consoles: readonly ConsoleState[];
  readonly timeout: number;
  readonly resume: boolean;
}

const SPEC_FORMAT = 'qmpkit-clone';
const SPEC_VERSION = 1;
const SPEC_FILE = 'clone.json';

/**
 * Starts `options.count` clones of snapshot `name` (default: the store's current one) of
 * the store in `storeDir` (a VM directory's `snapshots/`), in this process. Resolves when
 * every clone has loaded the state (and runs, unless `resume: false`). The same as
 * `prepareClones` followed by `startPreparedClone` for each, with a QMP socket per clone.
 */
export async function cloneSnapshot(
  storeDir: string,
  name: string | undefined,
  options: CloneOptions,
): Promise<CloneSet> {
  const started = performance.now();
  const { qemu, cacheDir, consoles, concurrency, ...rest } = options;
  const prepared = await prepareClones(storeDir, name, {
    ...rest,
    ...(typeof qemu === 'string' ? { qemu } : {}),
  });
  const clones: Clone[] = [];
  let failure: unknown;
  const queue = [...prepared.clones];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (failure !== undefined) return;
      const qmpSocket = path.join(next.dir, 'qmp.sock');
      const stateFile = path.join(next.dir, 'state.json');
      try {
        const machine = await startPreparedClone(next.spec, {
          runDir: path.join(next.dir, 'run'),
          stateFile,
          consoles: consoles ?? [],
          ...(qemu !== undefined ? { qemu } : {}),
          ...(cacheDir !== undefined ? { cacheDir } : {}),
          extraArgs: [
            '-chardev',
            `socket,id=clone-qmp,path=${qmpSocket},server=on,wait=off`,
            '-mon',
            'chardev=clone-qmp,mode=control',
          ],
        });
        clones.push({ index: next.index, dir: next.dir, qmpSocket, stateFile, machine });
      } catch (error) {
        failure ??= error;
      }
    }
  };
  const count = prepared.clones.length;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency ?? 4, count)) }, worker));
  if (failure !== undefined) {
    await Promise.all(clones.map((c) => c.machine.stop().catch(() => c.machine.kill())));
    await prepared.discard();
    throw failure instanceof SnapshotCloneError
      ? failure
      : new SnapshotCloneError(
          'start-failed',
          `a clone of '${prepared.snapshot.name}' did not start: ${failure instanceof Error ? failure.message : String(failure)}`,
          { snapshot: prepared.snapshot.name, dirs: prepared.clones.map((c) => c.dir) },
          { cause: failure },
        );
  }
  clones.sort((a, b) => a.index - b.index);
  return {
    snapshot: prepared.snapshot,
    ram: prepared.ram,
    clones,
    totalMs: performance.now() - started,
  };
}

/**
 * Everything of `cloneSnapshot` but starting QEMU: checks the snapshot and the clone
 * directories, then creates each `<into>/<prefix>-<n>` with its overlays (and RAM file, for
 * `ram: 'copy'` or a stream snapshot) and a `clone.json` that `startPreparedClone` starts
 * from — in this process or in another (the CLI starts each clone under a supervisor of its
 * own). Everything that can be refused is refused before a directory is created; a failure
 * while creating them removes what this call created.
 */
export async function prepareClones(
  storeDir: string,
  name: string | undefined,
  options: PrepareCloneOptions,
): Promise<PreparedCloneSet> {
  const { count } = options;
  if (!Number.isInteger(count) || count < 1)
    throw new SnapshotCloneError('count', `count must be an integer ≥ 1, not ${count}`);
  const root = path.resolve(storeDir);
  if (!(await exists(path.join(root, 'manifest.json'))))
    throw new SnapshotCloneError(
      'no-store',
      `${root} holds no snapshot store (no manifest.json); save a snapshot of the VM first`,
    );
  const store = await SnapshotStore.open(root);
  const known = store.snapshots().map((s) => s.name);
  const record = name !== undefined ? store.find(name) : store.byId(store.manifest.current ?? null);
  if (record === undefined)
    throw new SnapshotNotFoundError(
      name ?? '(current)',
      known,
      name === undefined ? 'the store has no current snapshot' : undefined,
    );
  const state = record.stateFile;
  if (record.strategy !== 'external' || state === undefined || record.diskOnly === true)
    throw new SnapshotCloneError(
      'not-external',
      `snapshot '${record.name}' is ${record.strategy}${record.diskOnly ? ' (disk-only)' : ''}: clones start from an external snapshot's state file`,
      { snapshot: record.name },
    );
  const into = path.resolve(options.into);
  const dirs = cloneDirs(into, options.prefix ?? record.name, count);
  const socket = path.join(dirs[dirs.length - 1] ?? into, 'qmp.sock');
  if (Buffer.byteLength(socket) > SOCKET_PATH_MAX)
    throw new SnapshotCloneError(
      'path-too-long',
      `the QMP socket ${socket} would be ${Buffer.byteLength(socket)} bytes, more than a UNIX socket allows (${SOCKET_PATH_MAX}); use a shorter --into or prefix`,
      { snapshot: record.name },
    );
  const taken: string[] = [];
  for (const d of dirs) if (await exists(d)) taken.push(d);
  if (taken.length > 0)
    throw new SnapshotCloneError(
      'exists',
      `clone director${taken.length > 1 ? 'ies' : 'y'} ${taken.join(', ')} exist${taken.length > 1 ? '' : 's'} already`,
      { snapshot: record.name, dirs: taken },
    );
  const saved = fromDocument(record.config, { validate: false });
  for (const file of configFiles(saved))
    if (!(await exists(file)))
      throw new SnapshotIntegrityError(record.name, file, 'layer-missing', {
        message: 'a disk layer of the snapshot is missing',
      });
  const mode = options.verify ?? 'full';
  await verifyStateFile(record.name, state.path, state, mode === 'full' ? 'full' : 'quick');
  const ramFile = record.ramFile;
  if (ramFile !== undefined) await verifyRamFile(record.name, ramFile, mode);
  const plan: ClonePlan = {
    record,
    saved,
    statePath: state.path,
    ram: ramFile === undefined ? 'stream' : options.ram === 'copy' ? 'file-copy' : 'private-map',
    ramFile,
    options,
    timeout: options.timeout ?? defaultTimeout(record.memoryBytes),
    resume: options.resume ?? record.wasRunning,
  };

  // Only `into` itself may exist before; everything below it is this call's.
  const createdInto = !(await exists(into));
  await mkdir(into, { recursive: true, mode: 0o700 });
  const made: string[] = [];
  const discard = async () => {
    await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
    if (createdInto) await rm(into, { recursive: true, force: true });
  };
  const clones: PreparedClone[] = [];
  try {
    for (const [i, dir] of dirs.entries()) {
      try {
        await mkdir(dir, { mode: 0o700 });
      } catch (error) {
        // Appeared since the check (another caller): theirs, not removed below.
        throw new SnapshotCloneError(
          'exists',
          `clone directory ${dir} appeared while cloning`,
          { snapshot: record.name, dirs: [dir] },
          { cause: error },
        );
      }
      made.push(dir);
      clones.push(await prepareClone(plan, dir, i + 1));
    }
  } catch (error) {
    await discard();
    throw error;
  }
  return { snapshot: toInfo(record), ram: plan.ram, clones, discard };
}

/** Writes a clone directory's overlays, RAM file and `clone.json`. */
async function prepareClone(plan: ClonePlan, dir: string, index: number): Promise<PreparedClone> {
  const { record } = plan;
  const config = await cloneConfig(plan, dir);
  const spec: CloneSpec = {
    format: SPEC_FORMAT,
    version: SPEC_VERSION,
    snapshot: record.name,
    index,
    dir,
    config: toDocument(config),
    qemu: plan.options.qemu ?? record.qemuBinary?.path ?? 'qemu-system-x86_64',
    state: { path: plan.statePath, encoding: recordedEncoding(record.stateFile) },
    ram: plan.ram,
    consoles: record.consoles,
    timeout: plan.timeout,
    resume: plan.resume,
  };
  const file = path.join(dir, SPEC_FILE);
  await writeFile(file, `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { index, dir, spec: file };
}

export interface StartPreparedCloneOptions {
  /** The machine's run directory (default `<clone dir>/run`). */
  readonly runDir?: string;
  /** The machine's state file (default `<clone dir>/state.json`). */
  readonly stateFile?: string;
  /** The QEMU to run (default: the one `clone.json` names). */
  readonly qemu?: QemuSpec;
  readonly cacheDir?: string;
  /**
   * Chardev ids to keep as consoles; those the snapshot recorded get their unread text back
   * (default: every console the snapshot recorded).
   */
  readonly consoles?: readonly string[];
  /** More QEMU arguments (e.g. a QMP monitor of the clone's own). */
  readonly extraArgs?: readonly string[];
}

async function readSpec(file: string): Promise<CloneSpec> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new SnapshotCloneError(
      'spec',
      `${file}: not a readable clone specification (${error instanceof Error ? error.message : String(error)})`,
      {},
      { cause: error },
    );
  }
  const v = value as Partial<CloneSpec> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    v.format !== SPEC_FORMAT ||
    v.version !== SPEC_VERSION ||
    typeof v.dir !== 'string' ||
    typeof v.state?.path !== 'string'
  )
    throw new SnapshotCloneError(
      'spec',
      `${file}: not a ${SPEC_FORMAT} version ${SPEC_VERSION} file (written by prepareClones)`,
    );
  return v as CloneSpec;
}

/**
 * Starts the clone a `prepareClones` call prepared (`spec`: its `clone.json`): QEMU with
 * `-incoming defer`, paused; the snapshot's state loaded (with `x-ignore-shared` when its RAM
 * is a file); then `cont` when the snapshot was of a running guest (or `resume` was asked).
 * On failure QEMU is stopped and the error thrown; the directory stays (the caller's).
 */
export async function startPreparedClone(
  spec: string,
  options: StartPreparedCloneOptions = {},
): Promise<Machine> {
  const clone = await readSpec(spec);
  const config = fromDocument(clone.config, { validate: false });
  const mappedRam = clone.state.encoding.format === 'mapped-ram';
  const consoles = options.consoles ?? clone.consoles.map((c) => c.chardev);
  const machine = await launch(config, {
    qemu: options.qemu ?? clone.qemu,
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    runDir: options.runDir ?? path.join(clone.dir, 'run'),
    stateFile: options.stateFile ?? path.join(clone.dir, 'state.json'),
    consoles,
    consoleState: clone.consoles.filter((c) => consoles.includes(c.chardev)),
    incoming: true,
    paused: true,
    // A mapped-ram file is opened by QEMU itself (`file:` URI).
    ...(mappedRam ? {} : { inheritFiles: [{ path: clone.state.path }] }),
    extraArgs: options.extraArgs ?? [],
  });
  try {
    if (clone.ram !== 'stream') {
      if (!(await hasIgnoreShared(machine.qmp)))
        throw new SnapshotCloneError(
          'no-x-ignore-shared',
          `snapshot '${clone.snapshot}' keeps its RAM in a file and this QEMU (${machine.qemuVersion.major}.${machine.qemuVersion.minor}) has no x-ignore-shared migration capability to load its stream`,
          { snapshot: clone.snapshot, dirs: [clone.dir] },
        );
      await setUpMigration(machine, {
        capabilities: [{ capability: 'x-ignore-shared', state: true }],
      });
    }
    let uri = machine.inheritedFiles[0]?.uri ?? '';
    if (mappedRam) {
      await applyEncoding(machine.qmp, await mappedRamSupport(machine.qmp), clone.state.encoding);
      uri = fileUriFor(clone.state.path) ?? '';
    }
    await migrateIncoming(machine, { uri, timeout: clone.timeout });
    if (clone.resume) await machine.qmp.execute('cont');
  } catch (error) {
    await machine.stop().catch(() => machine.kill());
    throw error;
  }
  return machine;
}

/** The snapshot's configuration with a fresh overlay in `<dir>/disks` above each layer. */
async function cloneConfig(plan: ClonePlan, dir: string): Promise<VmConfig> {
  const saved = plan.saved;
  const layers = blockGraph(saved).writableActiveLayers();
  let config = withReadOnly(saved, chainNodes(saved, layers));
  const disks = path.join(dir, 'disks');
  await mkdir(disks, { mode: 0o700 });
  for (const [i, target] of layers.entries()) {
    const lf = layerFile(saved, target);
    if (lf === undefined)
      throw new SnapshotCloneError(
        'start-failed',
        `block node '${target}' is not backed by a plain file, so no overlay can name it as backing`,
        { snapshot: plan.record.name },
      );
    const file = path.join(disks, `${i}.qcow2`);
    await (await open(file, 'wx', 0o600)).close();
    await runQemuImg(
      ['create', '-q', '-f', 'qcow2', '-F', lf.format, '-b', path.resolve(lf.filename), file],
      { qemuImg: plan.options.qemuImg ?? 'qemu-img' },
    );
    config = insertOverlay(config, {
      target: { node: target },
      overlay: { driver: 'qcow2', 'node-name': `clone-${i}`, file: `clone-${i}-file` },
      nodes: [{ driver: 'file', 'node-name': `clone-${i}-file`, filename: file }],
    }).config;
  }
  if (plan.ramFile !== undefined) {
    let ramFile = plan.ramFile;
    if (plan.ram === 'file-copy')
      ramFile = await copyRamFile(plan.ramFile.path, path.join(dir, 'ram'), ramFile.backend);
    config = privateRamConfig(config, ramFile);
  } else {
    // RAM comes from the stream. A file backend of the saved VM would be one file for every
    // clone (and the template's own, if it runs): each clone gets a file of its own.
    const own = path.join(dir, 'ram');
    config = {
      ...config,
      objects: (config.objects ?? []).map((o) =>
        o['qom-type'] === 'memory-backend-file' ? { ...o, 'mem-path': own } : o,
      ) as VmConfig['objects'] & object,
    };
  }
  // The versioned machine type the snapshot was saved with (an alias would move on).
  return { ...config, machine: { ...config.machine, type: plan.record.machineType } };
}
