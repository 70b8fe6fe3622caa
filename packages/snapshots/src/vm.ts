/**
 * What every strategy needs from the running VM: its identity (machine type, device
 * configuration hash, QEMU version), pausing and resuming with QEMU's event timestamps,
 * letting console output in flight arrive, deadlines that scale with RAM, HMP with error
 * detection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type DeviceConfig, deviceProps, isGenericDevice, type VmConfig } from '@qmpkit/devices';
import { type Machine, type MachineQmp, STATE_FORMAT, STATE_VERSION } from '@qmpkit/machine';
import type { QmpTimestamp } from '@qmpkit/transport';
import {
  type CannotLoadBinary,
  SnapshotMismatchError,
  SnapshotQemuError,
  SnapshotUnsupportedError,
} from './errors.js';
import type { SnapshotRecord, StrategyKind } from './types.js';

/** Snapshot names: they end up in HMP command lines and file names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(strategy: StrategyKind, name: string): void {
  if (!NAME.test(name))
    throw new SnapshotUnsupportedError(strategy, [
      `snapshot name ${JSON.stringify(name)} must match ${NAME} (it is used in HMP command lines and file names)`,
    ]);
}

export function newId(): string {
  return randomBytes(4).toString('hex');
}

/** Milliseconds of a QMP timestamp. */
export function eventMs(ts: QmpTimestamp): number {
  return ts.seconds * 1000 + ts.microseconds / 1000;
}

/** Default deadline: 30 s plus 1 s per 20 MiB of RAM (savevm blocks the monitor that long). */
export function defaultTimeout(memoryBytes: number): number {
  return 30_000 + Math.ceil(memoryBytes / (20 * 1024 * 1024)) * 1000;
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A device with its block node references replaced (overlays rename the nodes). */
function guestVisible(device: DeviceConfig): unknown {
  const props = { ...deviceProps(device) };
  if ('drive' in props) props.drive = '<drive>';
  return {
    driver: device.driver,
    id: device.id,
    bus: device.bus,
    props,
    generic: isGenericDevice(device),
  };
}

/**
 * SHA-256 of what the guest can see and what a migration stream must match: machine
 * options, CPU, memory, SMP, devices in order (block node names replaced, since external
 * snapshots rename them), memory backend objects. Not hashed: block node names and chains,
 * chardev and netdev backends, accelerators.
 */
export function deviceConfigHash(config: VmConfig): string {
  const m = config.machine;
  const memoryObjects = (config.objects ?? [])
    .filter((o) => String(o['qom-type']).startsWith('memory-backend'))
    .map((o) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== 'mem-path')));
  const canonical = {
    machine: {
      type: m.type,
      props: m.props ?? {},
      'memory-backend': m['memory-backend'] !== undefined,
      pflash0: m.pflash0 !== undefined,
      pflash1: m.pflash1 !== undefined,
    },
    cpu: config.cpu,
    memory: config.memory,
    smp: config.smp,
    devices: (config.devices ?? []).map(guestVisible),
    memoryObjects,
  };
  return createHash('sha256').update(stable(canonical)).digest('hex');
}

export interface VmIdentity {
  readonly qemuVersion: string;
  /** Number of vCPUs (`-smp`; 1 when the configuration has none). */
  readonly cpus?: number;
  /** The guest-visible devices as `driver#id`, in order (see `deviceSetOf`). */
  readonly deviceSet?: readonly string[];
  readonly machineType: string;
  readonly configHash: string;
  readonly memoryBytes: number;
  /** The binary the machine runs on (from its state file's record), when known. */
  readonly qemuBinary?: { readonly path: string; readonly version: string };
  /** The machine state format this package writes. */
  readonly stateFormat?: { readonly format: string; readonly version: number };
}

/** The machine type QEMU really runs (`pc` → `pc-i440fx-7.2`). */
export async function currentMachineType(qmp: MachineQmp): Promise<string> {
  const type = await qmp.executeUnchecked('qom-get', { path: '/machine', property: 'type' });
  return typeof type === 'string' ? type.replace(/-machine$/, '') : String(type);
}

/** vCPUs of a configuration: `cpus`, else the product of the topology, else 1. */
export function cpuCount(config: VmConfig): number {
  const smp = config.smp;
  if (smp === undefined) return 1;
  if (smp.cpus !== undefined) return smp.cpus;
  return (
    (smp.sockets ?? 1) *
    (smp.dies ?? 1) *
    (smp.clusters ?? 1) *
    (smp.cores ?? 1) *
    (smp.threads ?? 1)
  );
}

/** The guest-visible devices of a configuration as `driver#id` (what a refusal can name). */
export function deviceSetOf(config: VmConfig): string[] {
  return (config.devices ?? []).map((d) => `${d.driver}#${d.id ?? ''}`);
}

export async function vmIdentity(machine: Machine): Promise<VmIdentity> {
  const v = machine.qemuVersion;
  const running = machine.status === 'running';
  return {
    qemuVersion: `${v.major}.${v.minor}.${v.micro}`,
    cpus: cpuCount(machine.config),
    deviceSet: deviceSetOf(machine.config),
    machineType: running
      ? await currentMachineType(machine.qmp)
      : (machine.machineType ?? machine.config.machine.type),
    configHash: deviceConfigHash(machine.config),
    memoryBytes: machine.config.memory.size,
    ...(machine.qemuBinary !== undefined
      ? { qemuBinary: { path: machine.qemuBinary.path, version: machine.qemuBinary.version } }
      : {}),
    stateFormat: { format: STATE_FORMAT, version: STATE_VERSION },
  };
}

/** The identity fields a snapshot record keeps beside version, type and hash. */
export function recordedBinary(
  identity: VmIdentity,
): Pick<SnapshotRecord, 'qemuBinary' | 'stateFormat' | 'cpus' | 'deviceSet'> {
  return {
    ...(identity.cpus !== undefined ? { cpus: identity.cpus } : {}),
    ...(identity.deviceSet !== undefined ? { deviceSet: identity.deviceSet } : {}),
    ...(identity.qemuBinary !== undefined ? { qemuBinary: identity.qemuBinary } : {}),
    ...(identity.stateFormat !== undefined ? { stateFormat: identity.stateFormat } : {}),
  };
}

function sides(
  record: SnapshotRecord,
  identity: VmIdentity,
): { saved?: CannotLoadBinary; loading?: CannotLoadBinary } {
  return {
    ...(record.qemuBinary !== undefined
      ? { saved: { path: record.qemuBinary.path, version: record.qemuBinary.version } }
      : {}),
    ...(identity.qemuBinary !== undefined
      ? { loading: { path: identity.qemuBinary.path, version: identity.qemuBinary.version } }
      : {}),
  };
}

/** `only in the snapshot: …; only here: …` of two device lists, or undefined when equal. */
function deviceDifference(
  saved: readonly string[],
  here: readonly string[],
): { expected: string; actual: string } | undefined {
  const a = new Set(saved);
  const b = new Set(here);
  const onlySaved = saved.filter((d) => !b.has(d));
  const onlyHere = here.filter((d) => !a.has(d));
  if (onlySaved.length === 0 && onlyHere.length === 0) return undefined;
  const list = (l: string[]) => (l.length === 0 ? 'nothing else' : l.join(', '));
  return { expected: `devices ${list(onlySaved)}`, actual: `devices ${list(onlyHere)}` };
}

/**
 * Throws `SnapshotMismatchError` (reason `machine-type-differs`, `ram-differs`,
 * `cpus-differs` or `device-set-differs`) unless `record` fits the VM `identity` describes.
 */
export function checkIdentity(record: SnapshotRecord, identity: VmIdentity): void {
  const extra = sides(record, identity);
  if (record.machineType !== identity.machineType)
    throw new SnapshotMismatchError(
      record.name,
      'machine-type',
      record.machineType,
      identity.machineType,
      extra,
    );
  if (record.memoryBytes !== identity.memoryBytes)
    throw new SnapshotMismatchError(
      record.name,
      'memory',
      `${record.memoryBytes} bytes`,
      `${identity.memoryBytes} bytes`,
      extra,
    );
  if (record.configHash === identity.configHash) return;
  if (record.cpus !== undefined && identity.cpus !== undefined && record.cpus !== identity.cpus)
    throw new SnapshotMismatchError(
      record.name,
      'cpus',
      `${record.cpus} CPUs`,
      `${identity.cpus} CPUs`,
      extra,
    );
  const devices =
    record.deviceSet !== undefined && identity.deviceSet !== undefined
      ? deviceDifference(record.deviceSet, identity.deviceSet)
      : undefined;
  throw new SnapshotMismatchError(
    record.name,
    'device-config',
    devices?.expected ?? `hash ${record.configHash.slice(0, 12)}…`,
    devices?.actual ?? `hash ${identity.configHash.slice(0, 12)}…`,
    extra,
  );
}

/**
 * Waits until console output QEMU wrote before the pause has reached the consoles (no new
 * text for 20 ms, at most 500 ms), so the unread text saved with a snapshot is complete.
 */
export async function settleConsoles(machine: Machine): Promise<void> {
  const snapshot = () =>
    machine
      .consoleState()
      .map((c) => c.unread.length)
      .join(',');
  let last = snapshot();
  const deadline = performance.now() + 500;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    const now = snapshot();
    if (now === last) return;
    last = now;
  }
}

export interface Paused {
  readonly wasRunning: boolean;
  /** QEMU's STOP timestamp (ms), when this call paused the guest. */
  readonly stopMs: number | undefined;
}

/** Pauses the guest (if it runs) and waits for its STOP event. */
export async function pause(qmp: MachineQmp, timeout: number): Promise<Paused> {
  const status = await qmp.execute('query-status');
  if (!status.running) return { wasRunning: false, stopMs: undefined };
  const stopped = qmp.expectEvent('STOP');
  try {
    await qmp.execute('stop', undefined, { timeout });
    const event = await stopped.wait({ timeout });
    return { wasRunning: true, stopMs: eventMs(event.timestamp) };
  } finally {
    stopped.cancel();
  }
}

/** `cont` and QEMU's RESUME timestamp (ms). */
export async function resume(qmp: MachineQmp, timeout: number): Promise<number> {
  const resumed = qmp.expectEvent('RESUME');
  try {
    await qmp.execute('cont', undefined, { timeout });
    const event = await resumed.wait({ timeout });
    return eventMs(event.timestamp);
  } finally {
    resumed.cancel();
  }
}

/**
 * Runs an HMP command and throws `SnapshotQemuError` when QEMU answered with an error text
 * (`{"return": "Error: …"}` is a *successful* QMP reply).
 */
export async function hmpChecked(
  qmp: MachineQmp,
  line: string,
  context: { strategy: StrategyKind; operation: 'save' | 'load' | 'delete' | 'list' },
  timeout: number,
): Promise<string> {
  const output = await qmp.hmp(line, { timeout });
  const text = output.trim();
  const error = /(?:^|\n)Error: ?([^\r\n]*)/.exec(text);
  if (error)
    throw new SnapshotQemuError({
      ...context,
      command: line.split(' ')[0] ?? line,
      desc: error[1] ?? text,
      output: text,
    });
  return output;
}

/** Internal snapshot tags of every device's top image (`query-block` … `image.snapshots`). */
export async function imageTags(
  qmp: MachineQmp,
): Promise<Map<string, { device: string; vmStateSize: number }>> {
  const blocks = await qmp.execute('query-block');
  const tags = new Map<string, { device: string; vmStateSize: number }>();
  for (const b of blocks) {
    for (const s of b.inserted?.image.snapshots ?? []) {
      const prev = tags.get(s.name);
      const size = s['vm-state-size'];
      if (prev === undefined || size > prev.vmStateSize)
        tags.set(s.name, { device: b.qdev ?? b.device, vmStateSize: size });
    }
  }
  return tags;
}

/**
 * If a migration left the block layer inactive (runstate `postmigrate`, after an external
 * save of a paused VM), `cont` + `stop` reactivates it: QEMU 7.2 has no other way.
 */
export async function ensureBlockActive(qmp: MachineQmp, timeout: number): Promise<boolean> {
  const status = await qmp.execute('query-status');
  if (status.status !== 'postmigrate') return false;
  await resume(qmp, timeout);
  await pause(qmp, timeout);
  return true;
}
