/**
 * Machine-type diff: what one versioned machine type (`pc-i440fx-7.2`) gives the guest on two
 * QEMU binaries, and where the two differ in a way a guest (or a migration stream) can see.
 *
 * Each side starts the machine paused (`-S`, no guest code runs) with the configuration's
 * devices, then walks the QOM tree under `/machine` and reads every scalar property of every
 * device instance with `qom-get`. Instance values are what the guest gets: QEMU applies the
 * machine type's compat properties (and `-global`s) to each instance when it is created.
 * `device-list-properties` / `qom-list-properties` are not used for values on purpose: their
 * `default-value` is the static class default, which ignores compat properties (on 10.0,
 * `ICH9-LPC`'s `noreboot` lists `false` while a `pc-q35-7.2` instance has `true`).
 *
 * A binary whose `query-machines` takes `compat-props` (QEMU ≥ 9.1) also reports the machine
 * type's compat property list; 7.2 has none. That list is reported beside the instance walk
 * (`method` says which each side used) and checked against it: every listed property of an
 * instance of that type must have the listed value.
 */
import { MiB, type VmConfig } from '@qmpkit/devices';
import { type QemuBinary, type ResolveQemuOptions, resolveQemuBinary } from '../binary.js';
import { MachineTypeError } from '../errors.js';
import { launch, type Machine } from '../machine.js';
import { machineTypes } from '../machine-type.js';

/** One compat property of a machine type (`query-machines` `compat-props`). */
export interface CompatProp {
  readonly qomType: string;
  readonly property: string;
  readonly value: string;
}

/** A compat property checked against the running instances of its type. */
export interface CompatPropCheck extends CompatProp {
  /** Canonical paths of the instances of `qomType` (or a subtype) found in the walk. */
  readonly instances: readonly string[];
  /** Instances whose property value does not read as `value` (should be empty). */
  readonly disagreeing: readonly { path: string; actual: unknown }[];
}

/** One QOM object of the walk: its canonical path, type and scalar property values. */
export interface MachineObject {
  /** What lines the object up with its twin on the other binary (see `withKeys`). */
  readonly key: string;
  /** `/machine/…` with anonymous `device[N]` replaced by `<type>[k]` (stable across binaries). */
  readonly path: string;
  /** The path QEMU uses. */
  readonly qomPath: string;
  readonly type: string;
  readonly properties: Readonly<Record<string, unknown>>;
}

export type MachineTypeMethod = 'query-machines compat-props + qom instances' | 'qom instances';

/** What one binary gives one machine type. */
export interface MachineTypeReport {
  readonly binary: { readonly path: string; readonly version: string };
  readonly machineType: string;
  /** How compat properties were learned (see the module comment). */
  readonly method: MachineTypeMethod;
  /** `query-machines` `default-cpu-type` (e.g. `qemu64-x86_64-cpu`). */
  readonly defaultCpuType: string | undefined;
  /** QOM types of the CPUs the machine created. */
  readonly cpuTypes: readonly string[];
  /** `compat-props` of `query-machines`, when the binary reports them. */
  readonly compatProps: readonly CompatPropCheck[] | undefined;
  /** Every device (and bus) under `/machine`, by canonical path. */
  readonly objects: readonly MachineObject[];
}

export type MachineTypeDifferenceKind =
  | 'cpu-model'
  | 'device-missing'
  | 'device-added'
  | 'device-type'
  | 'property-value';

/** A difference a guest can see. */
export interface MachineTypeDifference {
  readonly kind: MachineTypeDifferenceKind;
  /** Canonical object path (absent for `cpu-model`). */
  readonly path?: string;
  readonly property?: string;
  readonly source?: unknown;
  readonly destination?: unknown;
  readonly message: string;
}

/** A property only one binary has: a new knob, not by itself a difference (see decisions). */
export interface MachinePropertyNote {
  readonly path: string;
  readonly property: string;
  readonly side: 'source' | 'destination';
  readonly value: unknown;
}

export interface MachineTypeDiff {
  readonly source: MachineTypeReport;
  readonly destination: MachineTypeReport;
  readonly differences: readonly MachineTypeDifference[];
  readonly onlyOnOneSide: readonly MachinePropertyNote[];
}

export interface InspectMachineTypeOptions extends ResolveQemuOptions {
  /**
   * Devices (and their backends) to start the machine with; its `machine.type` is replaced
   * by the type asked for. Default: no devices, and QEMU's default devices (`nodefaults`
   * false) so the diff covers what a plain `-machine TYPE` gets.
   */
  readonly config?: VmConfig;
  /** Directory for the run directory (default `os.tmpdir()`). */
  readonly runDirParent?: string;
  /** Milliseconds to a negotiated QMP session (default 30 000). */
  readonly launchTimeout?: number;
}

/** Property values that change from run to run of the same binary (wall clock, host state). */
const VOLATILE: ReadonlySet<string> = new Set(['date', 'rtc-time', 'tsc-frequency']);

/** Object types not walked: memory regions, IRQ lines and other plumbing the guest never reads as properties. */
const SKIPPED_TYPE = /^(memory-region|irq|qemu:memory-region|.*-mr)$/;

function childType(type: string): string | undefined {
  return /^child<(.+)>$/.exec(type)?.[1];
}

function isScalar(type: string): boolean {
  return !type.startsWith('link<') && !type.startsWith('child<');
}

interface QomEntry {
  readonly name: string;
  readonly type: string;
}

async function qomList(m: Machine, path: string): Promise<QomEntry[]> {
  return (await m.qmp.execute('qom-list', { path })) as QomEntry[];
}

/**
 * Canonical name of each child: `device[7]` → `<type>[k]`, k counting that type's anonymous
 * siblings in QEMU's order, so the same board built by two binaries lines up even when one
 * creates an extra helper object first.
 */
function canonicalNames(children: readonly QomEntry[]): Map<string, string> {
  const out = new Map<string, string>();
  const anonymous = children
    .map((c) => ({ c, m: /^(.*)\[(\d+)\]$/.exec(c.name) }))
    .filter((x) => x.m !== null && (x.m[1] === 'device' || x.m[1] === 'non-qdev'))
    .sort((a, b) => Number(a.m?.[2]) - Number(b.m?.[2]));
  const seen = new Map<string, number>();
  for (const { c } of anonymous) {
    const type = childType(c.type) ?? c.type;
    const k = seen.get(type) ?? 0;
    seen.set(type, k + 1);
    out.set(c.name, `${type}[${k}]`);
  }
  for (const c of children) if (!out.has(c.name)) out.set(c.name, c.name);
  return out;
}

/**
 * Every device (and bus) under `/machine` of a running QEMU, with its scalar property values
 * (`properties: false` lists the objects only, which is much faster).
 */
export async function walkMachine(
  m: Machine,
  options: { readonly properties?: boolean } = {},
): Promise<MachineObject[]> {
  const objects: Omit<MachineObject, 'key'>[] = [];
  const queue: { qomPath: string; path: string; type: string }[] = [
    { qomPath: '/machine', path: '/machine', type: 'machine' },
  ];
  while (queue.length > 0) {
    const batch = queue.splice(0, queue.length);
    const lists = await Promise.all(batch.map((o) => qomList(m, o.qomPath)));
    for (const [i, o] of batch.entries()) {
      const entries = lists[i] ?? [];
      const names = canonicalNames(entries.filter((e) => childType(e.type) !== undefined));
      for (const e of entries) {
        const type = childType(e.type);
        if (type === undefined || SKIPPED_TYPE.test(type)) continue;
        const sep = o.qomPath === '/' ? '' : '/';
        queue.push({
          qomPath: `${o.qomPath}${sep}${e.name}`,
          path: `${o.path}/${names.get(e.name) ?? e.name}`,
          type,
        });
      }
      const scalar = entries.filter((e) => isScalar(e.type) && !VOLATILE.has(e.name));
      // Containers (`/machine/unattached`) and other non-devices have no `realized`: their
      // children are walked, their own properties are not compared.
      const isDevice = entries.some((e) => e.name === 'realized') || o.path === '/machine';
      if (!isDevice) continue;
      if (options.properties === false) {
        objects.push({ path: o.path, qomPath: o.qomPath, type: o.type, properties: {} });
        continue;
      }
      const values = await Promise.all(
        scalar.map((e) =>
          m.qmp.execute('qom-get', { path: o.qomPath, property: e.name }).then(
            (v) => ({ ok: true as const, v }),
            // Write-only and unreadable properties (QEMU answers GenericError) carry no value.
            () => ({ ok: false as const }),
          ),
        ),
      );
      const properties: Record<string, unknown> = {};
      for (const [j, e] of scalar.entries()) {
        const r = values[j];
        if (r?.ok) properties[e.name] = r.v;
      }
      // The machine object's `type` is the versioned class name; compare it like a property.
      objects.push({ path: o.path, qomPath: o.qomPath, type: o.type, properties });
    }
  }
  return withKeys(objects);
}

/**
 * Gives each object its `key`: `/machine/peripheral/<id>` for a device with an id, the path
 * for named children of the machine, else `<type>#k` (k counting that type's objects in path
 * order). Boards move built-in devices around the tree between releases (10.0 creates the
 * PIIX4 PM, RTC and IDE as children of PIIX3; 7.2 under `/machine/unattached`), so a tree path
 * alone would report them missing and added.
 */
function withKeys(objects: Omit<MachineObject, 'key'>[]): MachineObject[] {
  const sorted = [...objects].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const seen = new Map<string, number>();
  return sorted.map((o) => {
    if (o.path === '/machine' || o.path.startsWith('/machine/peripheral/'))
      return { ...o, key: o.path };
    const k = seen.get(o.type) ?? 0;
    seen.set(o.type, k + 1);
    return { ...o, key: `${o.type}#${k}` };
  });
}

/** Whether a `qom-get` value reads as the string a compat property sets. */
export function compatValueMatches(actual: unknown, value: string): boolean {
  if (typeof actual === 'boolean')
    return (
      (actual && ['on', 'true', 'yes'].includes(value)) ||
      (!actual && ['off', 'false', 'no'].includes(value))
    );
  if (typeof actual === 'number') return Number(value) === actual;
  if (typeof actual === 'string') return actual === value;
  return JSON.stringify(actual) === value;
}

async function compatProps(
  m: Machine,
  machineType: string,
  objects: readonly MachineObject[],
): Promise<{ defaultCpu: string | undefined; props: CompatPropCheck[] | undefined }> {
  const schema = await m.qmp.schema();
  const takesCompat = schema.query('query-machines', { member: 'compat-props' });
  const list = (await m.qmp.executeUnchecked(
    'query-machines',
    takesCompat ? { 'compat-props': true } : {},
  )) as {
    name: string;
    'default-cpu-type'?: string;
    'compat-props'?: { 'qom-type': string; property: string; value: string }[];
  }[];
  const info = list.find((x) => x.name === machineType);
  const defaultCpu = info?.['default-cpu-type'];
  if (!takesCompat) return { defaultCpu, props: undefined };
  const raw = info?.['compat-props'] ?? [];
  const types = [...new Set(raw.map((p) => p['qom-type']))];
  // Which concrete types implement each compat type (compat props name abstract parents too).
  const implementers = new Map<string, Set<string>>();
  await Promise.all(
    types.map(async (t) => {
      const found = (await m.qmp.execute('qom-list-types', {
        implements: t,
        abstract: true,
      })) as { name: string }[];
      implementers.set(t, new Set([t, ...found.map((f) => f.name)]));
    }),
  );
  const props = raw.map((p): CompatPropCheck => {
    const impl = implementers.get(p['qom-type']) ?? new Set([p['qom-type']]);
    const holders = objects.filter((o) => impl.has(o.type) && p.property in o.properties);
    return {
      qomType: p['qom-type'],
      property: p.property,
      value: p.value,
      instances: holders.map((o) => o.path),
      disagreeing: holders
        .filter((o) => !compatValueMatches(o.properties[p.property], p.value))
        .map((o) => ({ path: o.path, actual: o.properties[p.property] })),
    };
  });
  return { defaultCpu, props };
}

/** `MachineTypeError` unless `qemu -machine help` lists `machineType` (nothing is started). */
async function requireMachineType(qemu: QemuBinary, machineType: string): Promise<void> {
  const known = await machineTypes(qemu, process.env, qemu.version);
  if (!known.some((t) => t.name === machineType))
    throw new MachineTypeError({
      machineType,
      binary: qemu.path,
      binaryVersion: qemu.version,
      known: known.map((t) => t.name),
      pinned: false,
    });
}

const CPU_TYPE = /-x86_64-cpu$|-cpu$/;

/**
 * Starts `binary` paused with `machineType` (and `options.config`'s devices), reads what the
 * guest would get, and ends it. Throws `QemuBinaryError` for a binary that is not QEMU,
 * `MachineTypeError` for a type the binary lacks, `QemuLaunchError` when QEMU refuses the
 * configuration.
 */
export async function inspectMachineType(
  binary: QemuBinary | string,
  machineType: string,
  options: InspectMachineTypeOptions = {},
): Promise<MachineTypeReport> {
  const qemu = typeof binary === 'string' ? await resolveQemuBinary(binary, options) : binary;
  await requireMachineType(qemu, machineType);
  const base: VmConfig = options.config ?? {
    machine: { type: machineType },
    memory: { size: 32 * MiB },
    nodefaults: false,
  };
  const config: VmConfig = {
    ...base,
    machine: { ...base.machine, type: machineType },
    accel: base.accel ?? ['tcg'],
    paused: true,
  };
  const m = await launch(config, {
    // launch() finds a bare name on PATH itself; a QemuBinary it takes must carry a path.
    qemu: qemu.path.includes('/') ? qemu : qemu.path,
    stateFile: false,
    accel: ['tcg'],
    ...(options.runDirParent === undefined ? {} : { runDirParent: options.runDirParent }),
    ...(options.launchTimeout === undefined ? {} : { launchTimeout: options.launchTimeout }),
    logger: { warn: () => undefined },
  });
  try {
    const objects = await walkMachine(m);
    const { defaultCpu, props } = await compatProps(m, machineType, objects);
    return {
      binary: { path: qemu.path, version: qemu.version },
      machineType,
      method: props === undefined ? 'qom instances' : 'query-machines compat-props + qom instances',
      defaultCpuType: defaultCpu,
      cpuTypes: objects.filter((o) => CPU_TYPE.test(o.type)).map((o) => o.type),
      compatProps: props,
      objects,
    };
  } finally {
    await m.stop();
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A CPUID word of `feature-words` / `filtered-features`: its leaf, subleaf and register. */
function cpuidKey(v: unknown): string | undefined {
  if (!isRecord(v) || typeof v['cpuid-register'] !== 'string') return undefined;
  return `${String(v['cpuid-input-eax'])}/${String(v['cpuid-input-ecx'] ?? '-')}/${v['cpuid-register']}`;
}

/**
 * Property values that mean the same on both sides though they read differently: `rombar`
 * became a signed property whose default `-1` means "enabled, as before" (QEMU 9.x reads -1
 * where 7.2 read 1; an explicit 0 still disables the ROM BAR).
 */
const EQUIVALENT: readonly { property: string; values: readonly unknown[] }[] = [
  { property: 'rombar', values: [1, -1] },
];

/**
 * Whether two values agree on everything both have: struct members only one side has are
 * new knobs (reported as notes, see `diffMachineReports`), CPUID words only one side lists
 * are new leaves; everything both have must be equal.
 */
export function agrees(property: string, a: unknown, b: unknown): boolean {
  if (JSON.stringify(a) === JSON.stringify(b)) return true;
  if (
    EQUIVALENT.some((e) => e.property === property && e.values.includes(a) && e.values.includes(b))
  )
    return true;
  if (isRecord(a) && isRecord(b))
    return Object.keys(a).every((k) => !(k in b) || agrees(k, a[k], b[k]));
  if (Array.isArray(a) && Array.isArray(b)) {
    const keysA = a.map(cpuidKey);
    if (keysA.every((k) => k !== undefined)) {
      const byKey = new Map(b.map((w) => [cpuidKey(w), w]));
      return a.every((w, i) => {
        const other = byKey.get(keysA[i]);
        return other === undefined || JSON.stringify(w) === JSON.stringify(other);
      });
    }
    return a.length === b.length && a.every((x, i) => agrees(property, x, b[i]));
  }
  return false;
}

/** Compares two reports of the same machine type (pure). */
export function diffMachineReports(
  source: MachineTypeReport,
  destination: MachineTypeReport,
): MachineTypeDiff {
  const differences: MachineTypeDifference[] = [];
  const onlyOnOneSide: MachinePropertyNote[] = [];
  if (source.defaultCpuType !== destination.defaultCpuType)
    differences.push({
      kind: 'cpu-model',
      source: source.defaultCpuType,
      destination: destination.defaultCpuType,
      message: `default CPU model ${String(source.defaultCpuType)} → ${String(destination.defaultCpuType)}`,
    });
  if (JSON.stringify(source.cpuTypes) !== JSON.stringify(destination.cpuTypes))
    differences.push({
      kind: 'cpu-model',
      source: source.cpuTypes,
      destination: destination.cpuTypes,
      message: `CPUs ${source.cpuTypes.join(',')} → ${destination.cpuTypes.join(',')}`,
    });
  const dst = new Map(destination.objects.map((o) => [o.key, o]));
  const src = new Map(source.objects.map((o) => [o.key, o]));
  for (const a of source.objects) {
    const b = dst.get(a.key);
    if (b === undefined) {
      differences.push({
        kind: 'device-missing',
        path: a.path,
        source: a.type,
        message: `${a.type} at ${a.path} is not created by the destination`,
      });
      continue;
    }
    if (a.type !== b.type) {
      differences.push({
        kind: 'device-type',
        path: a.path,
        source: a.type,
        destination: b.type,
        message: `${a.path} is ${a.type} on the source, ${b.type} on the destination`,
      });
      continue;
    }
    for (const [name, value] of Object.entries(a.properties)) {
      if (!(name in b.properties)) {
        onlyOnOneSide.push({ path: a.path, property: name, side: 'source', value });
        continue;
      }
      if (!agrees(name, value, b.properties[name]))
        differences.push({
          kind: 'property-value',
          path: a.path,
          property: name,
          source: value,
          destination: b.properties[name],
          message: `${a.path}.${name}: ${JSON.stringify(value)} → ${JSON.stringify(b.properties[name])}`,
        });
    }
    for (const [name, value] of Object.entries(b.properties))
      if (!(name in a.properties))
        onlyOnOneSide.push({ path: b.path, property: name, side: 'destination', value });
  }
  for (const b of destination.objects)
    if (!src.has(b.key))
      differences.push({
        kind: 'device-added',
        path: b.path,
        destination: b.type,
        message: `${b.type} at ${b.path} is created by the destination only`,
      });
  return { source, destination, differences, onlyOnOneSide };
}

/** `inspectMachineType` on both binaries (one after the other), then `diffMachineReports`. */
export async function diffMachineType(
  source: QemuBinary | string,
  destination: QemuBinary | string,
  machineType: string,
  options: InspectMachineTypeOptions = {},
): Promise<MachineTypeDiff> {
  const resolve = (b: QemuBinary | string) =>
    typeof b === 'string' ? resolveQemuBinary(b, options) : Promise.resolve(b);
  const [from, to] = [await resolve(source), await resolve(destination)];
  // Both binaries must have the type before either is started.
  await requireMachineType(from, machineType);
  await requireMachineType(to, machineType);
  const a = await inspectMachineType(from, machineType, options);
  const b = await inspectMachineType(to, machineType, options);
  return diffMachineReports(a, b);
}
