/**
 * The state file: the VM configuration (the `@qmpkit/devices` document, kept current through
 * hot-plug and events) plus what is needed to start it again and what is known about the
 * running process. Written atomically on every change; read back with every field checked.
 *
 * ```json
 * { "format": "qmpkit-machine/state", "version": 2,
 *   "config": { "format": "qmpkit-devices/vm-config", "version": 1, "config": { … } },
 *   "launch": { "qemu": "qemu-system-x86_64", "consoles": [...], "assemble": "argv", …,
 *               "binary": { "path": …, "version": "7.2.22", "size": …, "mtimeMs": … },
 *               "machineType": "pc-i440fx-7.2" },
 *   "runtime": { "runDir": "…", "status": "running", "pid": 1234, "accel": "kvm", … } }
 * ```
 *
 * Version 2 added `launch.binary` (the QEMU the VM runs on, with size and mtime to notice a
 * replaced file) and `launch.machineType` (the versioned machine type an alias was pinned to
 * at first launch). Version 1 files (without both) are read as they are; the next write is v2.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import {
  type ConfigDocument,
  fromDocument,
  isConfigFormatError,
  isConfigValidationError,
  toDocument,
  type VmConfig,
} from '@qmpkit/devices';
import type { ConsoleEncoding } from './console.js';
import { StateFileError } from './errors.js';

export const STATE_FORMAT = 'qmpkit-machine/state';
/** The version this package writes (it reads this one and every earlier one). */
export const STATE_VERSION = 2;
/**
 * The version of a state written while a live migration is in flight (`runtime.migration`
 * set): a package that does not know that record cannot finish or undo the migration, so it
 * must refuse the file instead of relaunching the VM on one side of it. Without the record
 * the file is written as `STATE_VERSION`, readable by every package that reads v2.
 */
export const STATE_VERSION_MIGRATING = 3;
/** Versions `readState` accepts. */
export const STATE_VERSIONS_READ: readonly number[] = [1, 2, 3];

/** A console as stored: chardev id and encoding. */
export interface StoredConsole {
  readonly chardev: string;
  readonly encoding: ConsoleEncoding;
}

/** The launch options a relaunch reuses (per-launch ones such as `incoming` are not stored). */
export interface StoredLaunch {
  /** The QEMU binary as given (name on `PATH` or a path). */
  readonly qemu: string;
  readonly consoles: readonly StoredConsole[];
  readonly assemble: 'argv' | 'qmp';
  /** Arguments appended after the configuration's. */
  readonly extraArgs: readonly string[];
  /** Milliseconds to wait for the QMP greeting. */
  readonly launchTimeout: number;
  /** The QEMU binary the VM last ran on (state v2; absent in v1 files). */
  readonly binary?: StoredBinary;
  /**
   * The versioned machine type the configuration's type stands for, pinned at first launch
   * (`pc` → `pc-i440fx-7.2`); every later QEMU process runs it (state v2).
   */
  readonly machineType?: string;
}

/** A QEMU binary as the state file records it. */
export interface StoredBinary {
  readonly path: string;
  /** `--version`, e.g. `7.2.22`. */
  readonly version: string;
  /** `-L` directory, or null for QEMU's built-in one. */
  readonly dataDir: string | null;
  /** `QEMU_MODULE_DIR`, or null for QEMU's built-in one. */
  readonly moduleDir: string | null;
  /** Size and mtime of the executable: when they differ, the file was replaced. */
  readonly size: number;
  readonly mtimeMs: number;
}

export interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
  /** Distribution package string from the greeting (e.g. `Debian 1:7.2+dfsg-7+deb12u18`). */
  readonly package: string;
}

/**
 * `starting`: written before QEMU is spawned (a relaunch after a crash in the middle of a
 * launch finds the configuration and ends the half-started QEMU); `running`; `stopped` after
 * `stop()`/`kill()`; `exited` when QEMU went away on its own.
 */
export type MachineStatus = 'starting' | 'running' | 'stopped' | 'exited';

/**
 * Where a live migration of this VM stands (`migrate()`): `source` is the VM that moves away,
 * `target` the QEMU started to receive it. The phase is rewritten before each step, so a
 * manager that died in the middle knows, on `relaunch`, what to undo (before `switchover`:
 * the source is the VM, the target is ended and its files removed) or that the VM now lives
 * on the other side (from `confirming` on, the target may already run the guest).
 */
export interface MigrationRecord {
  readonly role: 'source' | 'target';
  readonly phase: MigrationPhase;
  /** The other side's run directory and state file (null while not yet known). */
  readonly peer: {
    readonly runDir: string;
    readonly stateFile: string | null;
    /** True when the migration created that run directory (then it removes it on undo). */
    readonly createdRunDir: boolean;
    /** Files and directories the migration created for the target (its fresh disk images). */
    readonly files?: readonly string[];
  } | null;
  /** ISO time the migration began. */
  readonly startedAt: string;
}

/**
 * `starting-target` → `setup` (capabilities, listening) → `mirroring` (local disks copied
 * over NBD, `disks: 'copy'` only) → `transferring` (RAM copied while the
 * guest runs) → `switchover` (source stopped, final state sent) → `confirming` (waiting for
 * the target's own RESUME/paused) → `finishing` (source ended) → `done`. After the switch to
 * post-copy a broken link adds `postcopy-paused` (both QEMUs alive and paused: the target holds
 * the guest, the source the pages not yet sent; neither may be killed) and `recovering` (a
 * fresh channel is being set up), then back to `confirming`.
 */
export type MigrationPhase =
  | 'starting-target'
  | 'setup'
  | 'mirroring'
  | 'transferring'
  | 'switchover'
  | 'confirming'
  | 'postcopy-paused'
  | 'recovering'
  | 'finishing'
  | 'done';

export const MIGRATION_PHASES: readonly MigrationPhase[] = [
  'starting-target',
  'setup',
  'mirroring',
  'transferring',
  'switchover',
  'confirming',
  'postcopy-paused',
  'recovering',
  'finishing',
  'done',
];

/** What is known about the VM's current (or last) QEMU process. */
export interface RuntimeFacts {
  readonly runDir: string;
  /** True when the machine created the run directory (it is removed by `stop()`/`kill()`). */
  readonly ownsRunDir: boolean;
  /** `running`; `stopped` after `stop()`/`kill()`; `exited` when QEMU went away on its own. */
  readonly status: MachineStatus;
  readonly pid: number | null;
  /**
   * The process's start time (`/proc/<pid>/stat` field 22, clock ticks after boot) on Linux,
   * so a relaunch only kills a leftover QEMU that really is this one, never a reused pid.
   */
  readonly pidStartTime: number | null;
  /**
   * The process that started QEMU (this Node process). A relaunch leaves a QEMU alone while
   * that process is still its parent, unless forced.
   */
  readonly parentPid: number | null;
  /** The binary actually executed (resolved on `PATH`). */
  readonly qemuBinary: string;
  readonly qemuVersion: QemuVersion | null;
  /** The accelerator QEMU ended up with (`kvm` when `query-kvm` says enabled, else the fallback). */
  readonly accel: string | null;
  readonly exit: { readonly code: number | null; readonly signal: string | null } | null;
  /** Tray state of removable-media devices, from `DEVICE_TRAY_MOVED`. */
  readonly trays: Readonly<Record<string, 'open' | 'closed'>>;
  /** ISO time of this version of the file. */
  readonly updatedAt: string;
  /** A live migration in flight (state v3; see `MigrationRecord`). */
  readonly migration?: MigrationRecord;
}

export interface MachineState {
  readonly format: typeof STATE_FORMAT;
  readonly version: number;
  readonly config: ConfigDocument;
  readonly launch: StoredLaunch;
  readonly runtime: RuntimeFacts;
}

/** Both halves of a state with the configuration unpacked. */
export interface LoadedState {
  readonly config: VmConfig;
  readonly launch: StoredLaunch;
  readonly runtime: RuntimeFacts;
}

export function stateDocument(
  config: VmConfig,
  launch: StoredLaunch,
  runtime: RuntimeFacts,
): MachineState {
  return {
    format: STATE_FORMAT,
    version: runtime.migration === undefined ? STATE_VERSION : STATE_VERSION_MIGRATING,
    config: toDocument(config),
    launch,
    runtime,
  };
}

export function backupPath(file: string): string {
  return `${file}.bak`;
}

function code(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

/**
 * Replaces `file` with `text` so that a crash at any moment leaves either the old or the new
 * version: temp file in the same directory (mode 0600, `O_EXCL`), write, fsync, keep the
 * old version as `<file>.bak` (a hard link, so the old bytes are never rewritten), rename
 * over `file`, fsync the directory. On failure the temp file is removed and `file` is untouched.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const nonce = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const temp = path.join(dir, `.${base}.${nonce}.tmp`);
  const bakTemp = path.join(dir, `.${base}.${nonce}.bak.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(file, bakTemp);
      await rename(bakTemp, backupPath(file));
    } catch (error) {
      // Usually absent (the link failed); a leftover `.tmp` is harmless and the link/rename error
      // below counts.
      await unlink(bakTemp).catch(() => {});
      if (code(error) !== 'ENOENT') throw error;
    }
    await rename(temp, file);
  } catch (error) {
    // The write's own error is thrown below; a temp file that stays is a dot-file named for this
    // pid.
    await unlink(temp).catch(() => {});
    throw new StateFileError(file, 'write-failed', [String(code(error) ?? error)], {
      cause: error,
    });
  }
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself has happened.
  }
}

/** Writes a state document atomically (see `writeFileAtomic`). */
export function writeState(file: string, state: MachineState): Promise<void> {
  return writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`);
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

class Issues {
  readonly list: string[] = [];
  add(at: string, text: string): void {
    this.list.push(`${at}: ${text}`);
  }
  string(record: Json, key: string, at: string): string {
    const v = record[key];
    if (typeof v !== 'string') this.add(`${at}.${key}`, `expected a string, got ${describe(v)}`);
    return typeof v === 'string' ? v : '';
  }
  intOrNull(record: Json, key: string, at: string): number | null {
    const v = record[key];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.add(`${at}.${key}`, `expected a non-negative integer or null, got ${describe(v)}`);
      return null;
    }
    return v;
  }
  record(value: unknown, at: string): Json {
    if (!isRecord(value)) {
      this.add(at, `expected an object, got ${describe(value)}`);
      return {};
    }
    return value;
  }
  known(record: Json, keys: readonly string[], at: string): void {
    for (const key of Object.keys(record))
      if (!keys.includes(key)) this.add(`${at}.${key}`, 'is not a field of this document');
  }
}

function readLaunch(value: unknown, issues: Issues): StoredLaunch {
  const at = '$.launch';
  const r = issues.record(value, at);
  issues.known(
    r,
    ['qemu', 'consoles', 'assemble', 'extraArgs', 'launchTimeout', 'binary', 'machineType'],
    at,
  );
  const qemu = issues.string(r, 'qemu', at);
  const consoles: StoredConsole[] = [];
  if (!Array.isArray(r.consoles))
    issues.add(`${at}.consoles`, `expected an array, got ${describe(r.consoles)}`);
  else
    r.consoles.forEach((c, i) => {
      const p = `${at}.consoles[${i}]`;
      const cr = issues.record(c, p);
      issues.known(cr, ['chardev', 'encoding'], p);
      const chardev = issues.string(cr, 'chardev', p);
      const encoding = cr.encoding;
      if (encoding !== 'utf8' && encoding !== 'latin1')
        issues.add(`${p}.encoding`, `expected "utf8" or "latin1", got ${describe(encoding)}`);
      consoles.push({ chardev, encoding: encoding === 'latin1' ? 'latin1' : 'utf8' });
    });
  if (r.assemble !== 'argv' && r.assemble !== 'qmp')
    issues.add(`${at}.assemble`, `expected "argv" or "qmp", got ${describe(r.assemble)}`);
  const extraArgs: string[] = [];
  if (!Array.isArray(r.extraArgs) || r.extraArgs.some((a) => typeof a !== 'string'))
    issues.add(`${at}.extraArgs`, `expected an array of strings, got ${describe(r.extraArgs)}`);
  else extraArgs.push(...(r.extraArgs as string[]));
  const launchTimeout = r.launchTimeout;
  if (typeof launchTimeout !== 'number' || !(launchTimeout > 0))
    issues.add(`${at}.launchTimeout`, `expected a positive number, got ${describe(launchTimeout)}`);
  let binary: StoredBinary | undefined;
  if (r.binary !== undefined) {
    const p = `${at}.binary`;
    const b = issues.record(r.binary, p);
    issues.known(b, ['path', 'version', 'dataDir', 'moduleDir', 'size', 'mtimeMs'], p);
    const dirOrNull = (key: string): string | null => {
      const v = b[key];
      if (v !== null && typeof v !== 'string')
        issues.add(`${p}.${key}`, `expected a string or null, got ${describe(v)}`);
      return typeof v === 'string' ? v : null;
    };
    const number = (key: string): number => {
      const v = b[key];
      if (typeof v !== 'number' || !(v >= 0))
        issues.add(`${p}.${key}`, `expected a non-negative number, got ${describe(v)}`);
      return typeof v === 'number' ? v : 0;
    };
    binary = {
      path: issues.string(b, 'path', p),
      version: issues.string(b, 'version', p),
      dataDir: dirOrNull('dataDir'),
      moduleDir: dirOrNull('moduleDir'),
      size: number('size'),
      mtimeMs: number('mtimeMs'),
    };
  }
  let machineType: string | undefined;
  if (r.machineType !== undefined) {
    machineType = issues.string(r, 'machineType', at);
    if (machineType === '') issues.add(`${at}.machineType`, 'expected a machine type name');
  }
  return {
    qemu,
    consoles,
    assemble: r.assemble === 'qmp' ? 'qmp' : 'argv',
    extraArgs,
    launchTimeout: typeof launchTimeout === 'number' ? launchTimeout : 30_000,
    ...(binary !== undefined ? { binary } : {}),
    ...(machineType !== undefined ? { machineType } : {}),
  };
}

function readRuntime(value: unknown, issues: Issues): RuntimeFacts {
  const at = '$.runtime';
  const r = issues.record(value, at);
  issues.known(
    r,
    [
      'runDir',
      'ownsRunDir',
      'status',
      'pid',
      'pidStartTime',
      'parentPid',
      'qemuBinary',
      'qemuVersion',
      'accel',
      'exit',
      'trays',
      'updatedAt',
      'migration',
    ],
    at,
  );
  const runDir = issues.string(r, 'runDir', at);
  if (runDir !== '' && !path.isAbsolute(runDir))
    issues.add(`${at}.runDir`, `expected an absolute path, got ${describe(runDir)}`);
  if (typeof r.ownsRunDir !== 'boolean')
    issues.add(`${at}.ownsRunDir`, `expected a boolean, got ${describe(r.ownsRunDir)}`);
  const status = r.status;
  if (status !== 'starting' && status !== 'running' && status !== 'stopped' && status !== 'exited')
    issues.add(
      `${at}.status`,
      `expected "starting", "running", "stopped" or "exited", got ${describe(status)}`,
    );
  const pid = issues.intOrNull(r, 'pid', at);
  const pidStartTime = issues.intOrNull(r, 'pidStartTime', at);
  const parentPid = issues.intOrNull(r, 'parentPid', at);
  const qemuBinary = issues.string(r, 'qemuBinary', at);
  let qemuVersion: QemuVersion | null = null;
  if (r.qemuVersion !== null) {
    const p = `${at}.qemuVersion`;
    const v = issues.record(r.qemuVersion, p);
    issues.known(v, ['major', 'minor', 'micro', 'package'], p);
    const major = issues.intOrNull(v, 'major', p);
    const minor = issues.intOrNull(v, 'minor', p);
    const micro = issues.intOrNull(v, 'micro', p);
    const pkg = issues.string(v, 'package', p);
    qemuVersion = { major: major ?? 0, minor: minor ?? 0, micro: micro ?? 0, package: pkg };
  }
  const accel = r.accel;
  if (accel !== null && typeof accel !== 'string')
    issues.add(`${at}.accel`, `expected a string or null, got ${describe(accel)}`);
  let exit: RuntimeFacts['exit'] = null;
  if (r.exit !== null) {
    const p = `${at}.exit`;
    const e = issues.record(r.exit, p);
    issues.known(e, ['code', 'signal'], p);
    if (e.code !== null && !Number.isInteger(e.code))
      issues.add(`${p}.code`, `expected an integer or null, got ${describe(e.code)}`);
    if (e.signal !== null && typeof e.signal !== 'string')
      issues.add(`${p}.signal`, `expected a string or null, got ${describe(e.signal)}`);
    exit = {
      code: typeof e.code === 'number' ? e.code : null,
      signal: typeof e.signal === 'string' ? e.signal : null,
    };
  }
  const trays: Record<string, 'open' | 'closed'> = {};
  const t = issues.record(r.trays, `${at}.trays`);
  for (const [id, state] of Object.entries(t)) {
    if (state !== 'open' && state !== 'closed')
      issues.add(`${at}.trays.${id}`, `expected "open" or "closed", got ${describe(state)}`);
    else trays[id] = state;
  }
  const updatedAt = issues.string(r, 'updatedAt', at);
  const migration = r.migration === undefined ? undefined : readMigration(r.migration, issues);
  return {
    runDir,
    ownsRunDir: r.ownsRunDir === true,
    status:
      status === 'stopped' || status === 'exited' || status === 'starting' ? status : 'running',
    pid,
    pidStartTime,
    parentPid,
    qemuBinary,
    qemuVersion,
    accel: typeof accel === 'string' ? accel : null,
    exit,
    trays,
    updatedAt,
    ...(migration !== undefined ? { migration } : {}),
  };
}

function readMigration(value: unknown, issues: Issues): MigrationRecord {
  const at = '$.runtime.migration';
  const r = issues.record(value, at);
  issues.known(r, ['role', 'phase', 'peer', 'startedAt'], at);
  if (r.role !== 'source' && r.role !== 'target')
    issues.add(`${at}.role`, `expected "source" or "target", got ${describe(r.role)}`);
  const phase = MIGRATION_PHASES.find((p) => p === r.phase);
  if (phase === undefined)
    issues.add(
      `${at}.phase`,
      `expected one of ${MIGRATION_PHASES.map((p) => `"${p}"`).join(', ')}, got ${describe(r.phase)}`,
    );
  let peer: MigrationRecord['peer'] = null;
  if (r.peer !== null) {
    const p = `${at}.peer`;
    const pr = issues.record(r.peer, p);
    issues.known(pr, ['runDir', 'stateFile', 'createdRunDir', 'files'], p);
    const runDir = issues.string(pr, 'runDir', p);
    if (runDir !== '' && !path.isAbsolute(runDir))
      issues.add(`${p}.runDir`, `expected an absolute path, got ${describe(runDir)}`);
    const stateFile = pr.stateFile;
    if (stateFile !== null && typeof stateFile !== 'string')
      issues.add(`${p}.stateFile`, `expected a string or null, got ${describe(stateFile)}`);
    if (typeof pr.createdRunDir !== 'boolean')
      issues.add(`${p}.createdRunDir`, `expected a boolean, got ${describe(pr.createdRunDir)}`);
    const files = pr.files;
    if (
      files !== undefined &&
      !(Array.isArray(files) && files.every((f) => typeof f === 'string' && path.isAbsolute(f)))
    )
      issues.add(`${p}.files`, `expected absolute paths, got ${describe(files)}`);
    peer = {
      runDir,
      stateFile: typeof stateFile === 'string' ? stateFile : null,
      createdRunDir: pr.createdRunDir === true,
      ...(Array.isArray(files) ? { files: files.filter((f) => typeof f === 'string') } : {}),
    };
  }
  return {
    role: r.role === 'target' ? 'target' : 'source',
    phase: phase ?? 'starting-target',
    peer,
    startedAt: issues.string(r, 'startedAt', at),
  };
}

/** Checks a parsed state document; throws `StateFileError` naming every problem. */
export function parseState(value: unknown, file: string, backup?: string): LoadedState {
  const issues = new Issues();
  const doc = issues.record(value, '$');
  if (issues.list.length > 0) throw new StateFileError(file, 'format', issues.list, { backup });
  if (doc.format !== STATE_FORMAT)
    issues.add('$.format', `is ${describe(doc.format)}, expected "${STATE_FORMAT}"`);
  if (typeof doc.version !== 'number' || !STATE_VERSIONS_READ.includes(doc.version))
    issues.add(
      '$.version',
      typeof doc.version === 'number' && doc.version > STATE_VERSION_MIGRATING
        ? `${doc.version} is newer than this package reads (${STATE_VERSION_MIGRATING}); update @qmpkit/machine`
        : `is ${describe(doc.version)}, expected one of ${STATE_VERSIONS_READ.join(', ')}`,
    );
  issues.known(doc, ['format', 'version', 'config', 'launch', 'runtime'], '$');
  if (issues.list.length > 0) throw new StateFileError(file, 'format', issues.list, { backup });
  if (doc.version === 1 && isRecord(doc.launch))
    for (const key of ['binary', 'machineType'])
      if (key in doc.launch) issues.add(`$.launch.${key}`, 'is not a field of version 1');
  if (
    doc.version !== STATE_VERSION_MIGRATING &&
    isRecord(doc.runtime) &&
    'migration' in doc.runtime
  )
    issues.add('$.runtime.migration', `is written only in version ${STATE_VERSION_MIGRATING}`);
  const launch = readLaunch(doc.launch, issues);
  const runtime = readRuntime(doc.runtime, issues);
  if (issues.list.length > 0) throw new StateFileError(file, 'format', issues.list, { backup });
  let config: VmConfig;
  try {
    config = fromDocument(doc.config);
  } catch (error) {
    if (isConfigFormatError(error) || isConfigValidationError(error)) {
      throw new StateFileError(
        file,
        'config',
        error.problems.map((p) => `${p.path.replace(/^\$/, '$.config')}: ${p.message}`),
        { cause: error, backup },
      );
    }
    throw error;
  }
  return { config, launch, runtime };
}

/** Whether `<file>.bak` exists and reads cleanly (then its path, for error messages). */
async function goodBackup(file: string): Promise<string | undefined> {
  const bak = backupPath(file);
  try {
    parseState(JSON.parse(await readFile(bak, 'utf8')), bak);
    return bak;
  } catch {
    return undefined;
  }
}

/**
 * Reads and checks a state file. Throws `StateFileError` (`unreadable`, `not-json`, `format`,
 * `config`), naming every problem and, when `<file>.bak` reads cleanly, that backup. Never
 * writes anything.
 */
export async function readState(file: string): Promise<LoadedState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new StateFileError(file, 'unreadable', [String(code(error) ?? error)], {
      cause: error,
      backup: await goodBackup(file),
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StateFileError(file, 'not-json', [`${text.length} bytes; ${reason}`], {
      cause: error,
      backup: await goodBackup(file),
    });
  }
  try {
    return parseState(value, file);
  } catch (error) {
    if (error instanceof StateFileError) {
      const backup = await goodBackup(file);
      if (backup === undefined) throw error;
      throw new StateFileError(file, error.problem, error.issues, { cause: error.cause, backup });
    }
    throw error;
  }
}
