/**
 * Device-state compatibility of a load on another binary than the save (issue #15 item 4).
 *
 * At save time the saving binary's `-dump-vmstate` for the VM's machine type is kept in the
 * store (`vmstate/<key>.json`, with the device types the VM instantiates), keyed on QEMU's
 * version, the fingerprint of the executable and its ROM files, the machine type and the
 * device set — never on a path — so a snapshot can still be checked statically when the
 * saving binary is gone (an in-place upgrade).
 *
 * At load time, when the loading binary is not the saving one: `probeCompatibility` (the same
 * configuration migrated from the saving into the loading binary on scratch images; QEMU's
 * own verdict) — `refuse` throws `SnapshotCannotLoadError` `incompatible-state` with QEMU's
 * reason, `warn` proceeds with a warning naming the statically flagged sections, `ok`
 * proceeds. When the saving binary is gone, the static diff of the kept dump against the
 * loading binary's, with a warning that no probe ran (a static diff alone never refuses: it
 * flags sections QEMU loads). `force` skips all of it.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import {
  condenseReason,
  deviceSet,
  diffVmstate,
  dumpVmstate,
  type Machine,
  parseVmstateDump,
  probeCompatibility,
  type QemuBinary,
  qemuFingerprint,
  resolveQemuBinary,
  walkMachine,
  writeFileAtomic,
} from '@qmpkit/machine';
import { type CannotLoadBinary, SnapshotCannotLoadError } from './errors.js';
import type { SnapshotRecord } from './types.js';

/** What the compatibility check of a load found (`LoadResult.compat`). */
export interface LoadCompatibility {
  /**
   * `probe`: the probe ran (or its cached verdict was used); `static`: the saving binary is
   * gone, only the dump kept at save time was compared; `none`: nothing to compare with (no
   * dump kept, or no saving binary recorded); `forced`: skipped (`force: true`).
   */
  readonly check: 'probe' | 'static' | 'none' | 'forced';
  readonly verdict: 'ok' | 'warn' | 'refuse' | undefined;
  readonly saved: CannotLoadBinary;
  readonly loading: CannotLoadBinary;
  /** Sections of this VM's device types the static diff flags. */
  readonly flaggedSections: readonly string[];
  /** Of those, the ones the probe loaded all the same (empty without a probe). */
  readonly flaggedButLoaded: readonly string[];
  /** Whether the probe's verdict came from the cache. */
  readonly cached?: boolean;
  readonly probeMs?: number;
}

/** The dump kept with a snapshot (see the module comment). */
interface KeptDump {
  readonly format: 'qmpkit-snapshots/vmstate';
  readonly version: 1;
  readonly qemuVersion: string;
  readonly fingerprint: string;
  readonly machineType: string;
  /** Device types (dump sections) the VM instantiated at the save. */
  readonly types: readonly string[];
  /** `-dump-vmstate` as QEMU wrote it. */
  readonly dump: string;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

/** The binary a machine runs on, as a `QemuBinary` (from its state file's record). */
export function machineBinary(machine: Machine): QemuBinary | undefined {
  const b = machine.qemuBinary;
  if (b === undefined) return undefined;
  const [major, minor] = b.version.split('.');
  return {
    path: b.path,
    version: b.version,
    release: `${major}.${minor}`,
    dataDir: b.dataDir ?? undefined,
    moduleDir: b.moduleDir ?? undefined,
    source: 'path',
  };
}

export function dumpsDir(storeDir: string): string {
  return path.join(storeDir, 'vmstate');
}

/**
 * Dumps already made by this process, per key: every store of the same binary, machine type
 * and device set gets the same file, and a dump takes a QEMU run.
 */
const kept = new Map<string, Promise<{ types: string[]; text: string }>>();

/**
 * Keeps the running binary's vmstate dump for `machineType` and this configuration's device
 * types in `<storeDir>/vmstate` (once per key) and returns the key.
 */
export async function keepVmstateDump(
  machine: Machine,
  storeDir: string,
  machineType: string,
): Promise<string | undefined> {
  const binary = machineBinary(machine);
  if (binary === undefined) return undefined;
  const fp = await qemuFingerprint(binary);
  const key = createHash('sha256')
    .update(
      canonical({
        version: fp.version,
        fingerprint: fp.sha256,
        machineType,
        devices: deviceSet(machine.config),
      }),
    )
    .digest('hex');
  const file = path.join(dumpsDir(storeDir), `${key}.json`);
  if ((await stat(file).catch(() => undefined)) !== undefined) return key;
  let memo = kept.get(key);
  if (memo === undefined) {
    memo = (async () => ({
      types: [
        ...new Set((await walkMachine(machine, { properties: false })).map((o) => o.type)),
      ].sort(),
      text: (await dumpVmstate(binary, machineType)).text,
    }))();
    kept.set(key, memo);
    memo.catch(() => kept.delete(key));
  }
  const { types, text } = await memo;
  const document: KeptDump = {
    format: 'qmpkit-snapshots/vmstate',
    version: 1,
    qemuVersion: fp.version,
    fingerprint: fp.sha256,
    machineType,
    types,
    dump: text,
  };
  await mkdir(dumpsDir(storeDir), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(document)}\n`);
  return key;
}

/**
 * `keepVmstateDump` for a save: a dump that cannot be kept (an unusual binary, a full disk)
 * does not fail the save; the load of that snapshot then says that it could not check.
 */
export async function keepDump(
  machine: Machine,
  storeDir: string,
  machineType: string,
): Promise<string | undefined> {
  try {
    return await keepVmstateDump(machine, storeDir, machineType);
  } catch {
    // See above: the snapshot is still good; only the static fallback is missing.
    return undefined;
  }
}

/** The saving binary, when it still exists as it was (same path, same version). */
async function savingBinary(record: SnapshotRecord): Promise<QemuBinary | undefined> {
  const saved = record.qemuBinary;
  if (saved === undefined) return undefined;
  try {
    const b = await resolveQemuBinary(saved.path);
    return b.version === saved.version ? b : undefined;
  } catch {
    // Gone, or no longer QEMU: no probe can run; the static check takes over.
    return undefined;
  }
}

const sameBinary = (a: CannotLoadBinary, b: CannotLoadBinary) =>
  a.path === b.path && a.version === b.version;

/**
 * Checks that `loading` takes the device state of `record` (see the module comment); returns
 * undefined when the load runs on the saving binary. `warn` receives the warnings.
 */
export async function checkCompatibility(init: {
  readonly machine: Machine;
  readonly record: SnapshotRecord;
  readonly storeDir: string;
  /** The configuration the load runs. */
  readonly config: VmConfig;
  /** The binary the load runs on (`undefined`: the machine's own). */
  readonly qemu: QemuBinary | undefined;
  readonly force: boolean;
  readonly cacheDir: string | undefined;
  readonly warn: (message: string) => void;
}): Promise<LoadCompatibility | undefined> {
  const { record } = init;
  const loadingBinary = init.qemu ?? machineBinary(init.machine);
  if (record.qemuBinary === undefined || loadingBinary === undefined) return undefined;
  const saved: CannotLoadBinary = {
    path: record.qemuBinary.path,
    version: record.qemuBinary.version,
  };
  const loading: CannotLoadBinary = { path: loadingBinary.path, version: loadingBinary.version };
  if (sameBinary(saved, loading)) return undefined;
  const base = { saved, loading, flaggedSections: [], flaggedButLoaded: [] };
  if (init.force) return { ...base, check: 'forced', verdict: undefined };
  const describe = (b: CannotLoadBinary) => `QEMU ${b.version} (${b.path})`;
  const save = await savingBinary(record);
  if (save !== undefined) {
    const r = await probeCompatibility({
      save,
      load: loadingBinary,
      config: init.config,
      machineType: record.machineType,
      ...(init.cacheDir !== undefined ? { cacheDir: init.cacheDir } : {}),
    });
    if (r.verdict === 'refuse') {
      const stderr = (r.probe.stderr ?? '')
        .split('\n')
        .filter((l) => l.trim() !== '' && !/failed to open module/i.test(l))
        .join('\n');
      throw new SnapshotCannotLoadError('incompatible-state', {
        snapshot: record.name,
        saved,
        loading,
        qemuStderr: stderr,
        message: `snapshot '${record.name}' cannot load on ${describe(loading)}: the compatibility probe (this configuration migrated from the saving binary into it, on scratch images) failed: ${r.probe.reason ?? condenseReason(stderr)}`,
        hint: 'pass force: true to try the load anyway',
      });
    }
    if (r.verdict === 'warn')
      init.warn(
        `snapshot '${record.name}': the static vmstate check of ${describe(saved)} → ${describe(loading)} flags ${r.flaggedSections.join(', ')}; the compatibility probe loaded them, so the load proceeds`,
      );
    return {
      ...base,
      check: 'probe',
      verdict: r.verdict,
      flaggedSections: r.flaggedSections,
      flaggedButLoaded: r.flaggedButLoaded,
      cached: r.probe.cached,
      probeMs: r.probe.ms,
    };
  }
  // The saving binary is gone: the dump kept at save time against the loading binary's.
  const key = record.vmstateKey;
  const keptDump =
    key === undefined
      ? undefined
      : await readFile(path.join(dumpsDir(init.storeDir), `${key}.json`), 'utf8')
          .then((t) => JSON.parse(t) as KeptDump)
          // A missing or torn dump is reported below as "not checked"; the load goes on.
          .catch(() => undefined);
  if (keptDump === undefined) {
    init.warn(
      `snapshot '${record.name}': ${describe(saved)}, which saved it, is gone and no vmstate dump of it was kept: no probe ran and the device state was not checked against ${describe(loading)}`,
    );
    return { ...base, check: 'none', verdict: undefined };
  }
  const savedDump = parseVmstateDump(keptDump.dump, `kept dump ${key}`);
  const { dump: loadDump } = await dumpVmstate(loadingBinary, record.machineType);
  const used = new Set(keptDump.types);
  const flagged = [
    ...new Set(
      diffVmstate(savedDump, loadDump)
        .problems.filter((p) => used.has(p.section))
        .map((p) => p.section),
    ),
  ].sort();
  init.warn(
    `snapshot '${record.name}': ${describe(saved)}, which saved it, is gone, so no probe ran; ${flagged.length > 0 ? `the static vmstate check (the dump kept at save time against ${describe(loading)}) flags ${flagged.join(', ')}, which QEMU may still load` : `the static vmstate check against ${describe(loading)} found no problem`}`,
  );
  return {
    ...base,
    check: 'static',
    verdict: flagged.length > 0 ? 'warn' : 'ok',
    flaggedSections: flagged,
  };
}
