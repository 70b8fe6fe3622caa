/**
 * What a load checks before it touches anything (no QEMU started or ended, no file written):
 * the binary it will run (given as `qemu`, or the VM's own when the load restarts QEMU), the
 * pinned machine type on that binary, the VM against the snapshot (machine type, RAM, CPUs,
 * devices) and, for a mapped-ram state file, that the loading binary reads the format. Each
 * refusal is a `SnapshotCannotLoadError` with its `reason`; the errors of machine
 * (`QemuBinaryError`, `QemuLaunchError`, `MachineTypeError`) are its `cause`.
 *
 * What the loading binary offers is asked here once (its live schema while it runs, else one
 * schema probe of the executable, remembered per path, version, size and mtime) and returned
 * as `LoadTarget.support`; the load reads that instead of asking again.
 */
import { stat } from 'node:fs/promises';
import type { VmConfig } from '@qmpkit/devices';
import {
  isMachineTypeError,
  isQemuBinaryError,
  isQemuLaunchError,
  type Machine,
  machineTypes,
  type QemuBinary,
  QemuBinaryError,
  type QemuSpec,
  resolveBinary,
  resolveMachineType,
  resolveQemuBinary,
} from '@qmpkit/machine';
import { checkCompatibility, type LoadCompatibility, machineBinary } from './compat.js';
import {
  type CannotLoadBinary,
  type CannotLoadReason,
  SnapshotCannotLoadError,
  SnapshotStateFormatError,
} from './errors.js';
import {
  binarySupport,
  type MappedRamSupport,
  machineSupport,
  recordedEncoding,
} from './mapped-ram.js';
import type { LoadOptions, SnapshotRecord } from './types.js';
import { checkIdentity, type VmIdentity } from './vm.js';

/** Where a load runs. */
export interface LoadTarget {
  /** Another binary than the VM's current one (`LoadOptions.qemu`), resolved and checked. */
  readonly qemu: QemuBinary | undefined;
  /** The binary the load runs on (the VM's own when `qemu` is undefined). */
  readonly loading: CannotLoadBinary;
  /** The binary that saved the snapshot, as the manifest records it. */
  readonly saved: CannotLoadBinary | undefined;
  /** The compatibility check (undefined on the saving binary). */
  readonly compat: LoadCompatibility | undefined;
  /**
   * What the loading binary offers for the state file, asked once by the preflight: set for a
   * mapped-ram state file (always `mappedRam: true` then: one the binary cannot read is
   * refused), undefined for every other load or when the binary is unknown (a state file
   * without its record; the QEMU the load starts is asked then, before it reads).
   */
  readonly support: MappedRamSupport | undefined;
  readonly warnings: readonly string[];
}

function savedSide(record: SnapshotRecord): CannotLoadBinary | undefined {
  return record.qemuBinary === undefined
    ? undefined
    : { path: record.qemuBinary.path, version: record.qemuBinary.version };
}

const BINARY_REASON: Record<string, CannotLoadReason> = {
  'not-found': 'binary-missing',
  'not-fetched': 'binary-missing',
  'not-qemu': 'not-qemu',
  'version-mismatch': 'not-qemu',
  'missing-module-dir': 'module-dir-missing',
  'missing-data-dir': 'data-dir-missing',
};

/** `spec` resolved; machine's binary errors become the hierarchy's. */
async function resolveTarget(
  record: SnapshotRecord,
  spec: QemuSpec,
  cacheDir: string | undefined,
): Promise<QemuBinary> {
  const asked = typeof spec === 'string' ? spec : spec.path;
  const saved = savedSide(record);
  try {
    if (typeof spec !== 'string') {
      if ((await stat(spec.path).catch(() => undefined)) === undefined)
        throw new SnapshotCannotLoadError('binary-missing', {
          snapshot: record.name,
          ...(saved ? { saved } : {}),
          loading: { path: spec.path, version: spec.version },
          message: `snapshot '${record.name}' cannot load on ${spec.path}: it does not exist`,
        });
      return spec;
    }
    let target = spec;
    if (!spec.includes('/') && !/^\d+\.\d+$/.test(spec)) {
      // A name on PATH: the file it stands for (compatibility answers hash the file).
      const found = await resolveBinary(spec);
      if (found === undefined)
        throw new QemuBinaryError('not-found', spec, { detail: `no ${spec} on PATH` });
      target = found;
    }
    return await resolveQemuBinary(target, cacheDir !== undefined ? { cacheDir } : {});
  } catch (error) {
    if (isQemuBinaryError(error) || (isQemuLaunchError(error) && error.reason === 'not-found')) {
      const reason = isQemuBinaryError(error)
        ? (BINARY_REASON[error.problem] ?? 'not-qemu')
        : 'binary-missing';
      throw new SnapshotCannotLoadError(
        reason,
        {
          snapshot: record.name,
          ...(saved ? { saved } : {}),
          loading: {
            path: asked,
            version: isQemuBinaryError(error) ? error.version : undefined,
          },
          message: `snapshot '${record.name}' cannot load on ${JSON.stringify(asked)} (${reason}): ${error.message}`,
        },
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Checks everything a load of `record` needs before it touches anything and returns where it
 * runs. `restarts`: the load starts a new QEMU (external always; internal with `qemu` or
 * after a crash), so the binary it starts must exist.
 */
export async function preflightLoad(
  machine: Machine,
  record: SnapshotRecord,
  identity: VmIdentity,
  options: LoadOptions,
  how: {
    /** The load starts a new QEMU (so the binary it starts must exist). */
    readonly restarts: boolean;
    /** The configuration the load runs (probed on both binaries). */
    readonly config: VmConfig;
    readonly storeDir: string;
  },
): Promise<LoadTarget> {
  const restarts = how.restarts;
  const saved = savedSide(record);
  let qemu: QemuBinary | undefined;
  let loading: CannotLoadBinary;
  if (options.qemu !== undefined) {
    qemu = await resolveTarget(record, options.qemu, options.cacheDir);
    loading = { path: qemu.path, version: qemu.version };
    const info = await stat(qemu.path);
    try {
      const types = await machineTypes(qemu, process.env, `${info.size}:${info.mtimeMs}`);
      resolveMachineType(record.machineType, types, qemu, true);
    } catch (error) {
      if (!isMachineTypeError(error) && !isQemuBinaryError(error)) throw error;
      const missing = isMachineTypeError(error);
      throw new SnapshotCannotLoadError(
        missing ? 'machine-type-missing' : 'not-qemu',
        {
          snapshot: record.name,
          ...(saved ? { saved } : {}),
          loading,
          expected: `machine type ${record.machineType}`,
          actual: missing
            ? `QEMU ${qemu.version} without it`
            : `no machine type list from ${qemu.path}`,
          ...(missing
            ? {
                hint: `load it on a QEMU that has ${record.machineType} (\`${qemu.path} -machine help\` lists this one's)`,
              }
            : {}),
        },
        { cause: error },
      );
    }
  } else {
    const own = machine.qemuBinary;
    loading = { path: own?.path, version: own?.version ?? identity.qemuVersion };
    if (
      restarts &&
      own?.path.includes('/') === true &&
      (await stat(own.path).catch(() => undefined)) === undefined
    )
      throw new SnapshotCannotLoadError('binary-missing', {
        snapshot: record.name,
        ...(saved ? { saved } : {}),
        loading,
        message: `snapshot '${record.name}' cannot load: the load restarts QEMU, and the binary the VM's state file names (QEMU ${own.version} at ${own.path}) no longer exists`,
        hint: 'pass qemu (the binary to use now) to load it on another one',
      });
  }
  checkIdentity(record, {
    ...identity,
    qemuBinary: { path: loading.path ?? '', version: loading.version ?? '' },
  });
  // Before the compatibility probe: a format the binary cannot read needs no probe to refuse.
  const support = await loadingSupport(machine, record, qemu, restarts);
  if (support !== undefined && !support.mappedRam)
    throw new SnapshotStateFormatError(record.name, loading.version ?? identity.qemuVersion);
  const warnings: string[] = [];
  const compat = await checkCompatibility({
    machine,
    record,
    storeDir: how.storeDir,
    config: how.config,
    qemu,
    force: options.force === true,
    cacheDir: options.cacheDir,
    warn: (message) => {
      warnings.push(message);
      options.onWarning?.(message);
    },
  });
  return { qemu, loading, saved, compat, support, warnings };
}

/**
 * What the loading binary offers, for a mapped-ram state file only (no other load needs it,
 * and a probe runs a QEMU): `qemu` when given, else the machine's own binary (its live schema
 * while it runs; else one probe of its executable when the load restarts QEMU).
 */
async function loadingSupport(
  machine: Machine,
  record: SnapshotRecord,
  qemu: QemuBinary | undefined,
  restarts: boolean,
): Promise<MappedRamSupport | undefined> {
  if (record.stateFile === undefined || recordedEncoding(record.stateFile).format !== 'mapped-ram')
    return undefined;
  if (qemu !== undefined) return await binarySupport(qemu);
  const known = await machineSupport(machine);
  if (known !== undefined || !restarts) return known;
  const own = machineBinary(machine);
  if (own === undefined) return undefined;
  try {
    return await binarySupport(own);
  } catch {
    // The probe could not run this executable (checked to exist above): unknown here; the
    // QEMU the load starts is asked before it reads, and fails to start with its own error.
    return undefined;
  }
}
