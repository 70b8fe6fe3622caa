/**
 * The `mapped-ram` state format of external snapshots (QEMU ≥ 9.0): RAM pages go to fixed
 * offsets of a seekable file (`file:` migration URI), so several multifd channels write and
 * read it in parallel, optionally with `O_DIRECT` (`direct-io`, ≥ 9.1). What this QEMU
 * offers is read from its live schema (`query-qmp-schema`), never from its version number.
 *
 * Only `mapped-ram` must match between save and load (a mapped-ram file loads only with
 * mapped-ram on, a stream only with it off); multifd channels and direct I/O are chosen per
 * direction (see docs/decisions.md for the measurements behind the defaults).
 */
import { constants } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type Machine, type MachineQmp, type QemuBinary, qemuBinaryEnv } from '@qmpkit/machine';
import { captureFromBinary } from '@qmpkit/schema';
import { SchemaIndex } from '@qmpkit/transport';
import type { MappedRamTuning, StateEncoding } from './types.js';

/** What the live schema of a QEMU offers for saving RAM to a file. */
export interface MappedRamSupport {
  /** The `mapped-ram` migration capability (QEMU ≥ 9.0). */
  readonly mappedRam: boolean;
  /** The `multifd-channels` migration parameter. */
  readonly multifdChannels: boolean;
  /** The `direct-io` migration parameter (QEMU ≥ 9.1). */
  readonly directIo: boolean;
}

/**
 * Defaults for a save: 4 multifd channels, no `O_DIRECT` (writes through the page cache
 * followed by one fsync were faster here than direct writes).
 */
export const DEFAULT_MAPPED_RAM_SAVE: Required<MappedRamTuning> = {
  multifdChannels: 4,
  directIo: false,
};

/**
 * Defaults for a load: 4 multifd channels with `O_DIRECT` where the file system takes it (a
 * cold read with direct I/O ran at the disk's `dd iflag=direct` speed; buffered reads were
 * slower and noisy).
 */
export const DEFAULT_MAPPED_RAM_LOAD: Required<MappedRamTuning> = {
  multifdChannels: 4,
  directIo: true,
};

/** Reads the migration capability and parameters this QEMU has from its live schema. */
export async function mappedRamSupport(qmp: MachineQmp): Promise<MappedRamSupport> {
  return supportIn(await qmp.schema());
}

/**
 * What another binary offers (a load with `LoadOptions.qemu`), asked before anything of the
 * VM is touched: the binary runs briefly with `-machine none` and answers `query-qmp-schema`.
 * Remembered per executable (path, version, size, mtime) for this process.
 */
export async function binarySupport(qemu: QemuBinary): Promise<MappedRamSupport> {
  const file = await stat(qemu.path);
  const key = JSON.stringify([qemu.path, qemu.version, file.size, file.mtimeMs]);
  const known = seen.get(key);
  if (known !== undefined) return known;
  const capture = await captureFromBinary(qemu.path, {
    args: qemu.dataDir !== undefined ? ['-L', qemu.dataDir] : [],
    env: qemuBinaryEnv(qemu),
  });
  const support = supportIn(SchemaIndex.from(capture.schema));
  seen.set(key, support);
  return support;
}

function supportIn(schema: Pick<SchemaIndex, 'query'>): MappedRamSupport {
  return {
    mappedRam: schema.query('migrate-set-capabilities', {
      member: 'capabilities',
      inner: { member: 'capability', value: 'mapped-ram' },
    }),
    multifdChannels: schema.query('migrate-set-parameters', { member: 'multifd-channels' }),
    directIo: schema.query('migrate-set-parameters', { member: 'direct-io' }),
  };
}

/** Answers seen per QEMU executable (path, version, size, mtime), for a machine not running. */
const seen = new Map<string, MappedRamSupport>();

function binaryKey(machine: Machine): string | undefined {
  const b = machine.qemuBinary;
  return b === undefined ? undefined : JSON.stringify([b.path, b.version, b.size, b.mtimeMs]);
}

/**
 * What the machine's QEMU offers: from the live schema while it runs (and remembered for its
 * executable); for a machine that is not running (after a failed load, a crash), what the
 * same executable answered before in this process, else `undefined` (unknown until a QEMU
 * runs: the caller asks the one it starts).
 */
export async function machineSupport(machine: Machine): Promise<MappedRamSupport | undefined> {
  const key = binaryKey(machine);
  if (machine.status === 'running') {
    const support = await mappedRamSupport(machine.qmp);
    if (key !== undefined) seen.set(key, support);
    return support;
  }
  return key === undefined ? undefined : seen.get(key);
}

/**
 * Whether files in `dir` can be opened with `O_DIRECT` (some file systems refuse with
 * EINVAL: tmpfs before Linux 6.6, several FUSE and network file systems). Creates and removes a probe file; any failure counts as "no".
 */
export async function probeDirectIo(dir: string): Promise<boolean> {
  const direct = constants.O_DIRECT;
  if (direct === undefined) return false;
  const probe = path.join(dir, `.direct-io-probe-${process.pid}-${Date.now()}`);
  try {
    const handle = await open(
      probe,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | direct,
      0o600,
    );
    await handle.close();
    return true;
  } catch {
    // EINVAL (no O_DIRECT on this file system) or anything else: use buffered I/O.
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}

/**
 * QEMU's `file:` URI treats `,offset=` in the path as an option; such a path cannot be
 * named in a URI, so mapped-ram (which needs `file:`) is not used for it.
 */
export function fileUriFor(file: string): string | undefined {
  return file.includes(',offset=') ? undefined : `file:${file}`;
}

/**
 * The encoding a save uses: `stream` when asked to be portable, when the VM is saved live
 * (`background-snapshot` is a different writer), when this QEMU has no `mapped-ram`, or
 * when the state file's path cannot be a `file:` URI; else `mapped-ram` with the tuning
 * (multifd only where the schema has `multifd-channels`, `O_DIRECT` only with multifd and
 * where `directIoOk`).
 */
export function chooseEncoding(
  support: MappedRamSupport,
  request: {
    readonly portable: boolean;
    readonly live: boolean;
    readonly uriOk: boolean;
    readonly directIoOk: boolean;
    readonly tuning: Required<MappedRamTuning>;
  },
): StateEncoding {
  if (request.portable || request.live || !support.mappedRam || !request.uriOk)
    return { format: 'stream' };
  const channels = support.multifdChannels
    ? Math.max(0, Math.floor(request.tuning.multifdChannels))
    : 0;
  return {
    format: 'mapped-ram',
    multifdChannels: channels,
    directIo: channels > 0 && support.directIo && request.directIoOk && request.tuning.directIo,
  };
}

/** The encoding recorded for a snapshot (`stream` for records written before it was recorded). */
export function recordedEncoding(
  stateFile: { readonly encoding?: StateEncoding } | undefined,
): StateEncoding {
  return stateFile?.encoding ?? { format: 'stream' };
}

/**
 * Sets the capabilities and parameters of `encoding` (before `migrate` or
 * `migrate-incoming`). On a QEMU with `mapped-ram`, a stream turns it (and multifd) off
 * explicitly: capabilities stay set in a QEMU process from one migration to the next.
 * Untyped calls: the root bindings are QEMU 7.2's, which has neither capability.
 */
export async function applyEncoding(
  qmp: MachineQmp,
  support: MappedRamSupport,
  encoding: StateEncoding,
): Promise<void> {
  if (!support.mappedRam) return;
  const mapped = encoding.format === 'mapped-ram';
  const channels = mapped ? encoding.multifdChannels : 0;
  await qmp.executeUnchecked('migrate-set-capabilities', {
    capabilities: [
      { capability: 'mapped-ram', state: mapped },
      { capability: 'multifd', state: channels > 0 },
    ],
  });
  const parameters: Record<string, unknown> = {};
  if (channels > 0 && support.multifdChannels) parameters['multifd-channels'] = channels;
  if (support.directIo) parameters['direct-io'] = mapped && encoding.directIo;
  if (Object.keys(parameters).length > 0)
    await qmp.executeUnchecked('migrate-set-parameters', parameters);
}
