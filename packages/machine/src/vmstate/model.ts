/**
 * A typed model of QEMU's `-dump-vmstate FILE` output and its reader. Pure: text in, model
 * out. The dump is one JSON object: the key `vmschkmachine` holds `{ "Name": <machine type> }`;
 * every other key is a section (a device class or a savevm handler) with `Name`, `version_id`,
 * `minimum_version_id` and an optional `Description`. A description (`name`, `version_id`,
 * `minimum_version_id`, `Fields`, `Subsections`) lists fields in wire order; a field (`field`,
 * `version_id`, `field_exists`, `size`) that is a nested struct carries its own `Description`.
 * Subsections are descriptions sent after the fields when the source needs them.
 */
import { VmstateDumpError } from './errors.js';

export interface VmstateField {
  /** The field's name (`parent_obj`, `env.regs`, `unused` for padding). */
  readonly name: string;
  /** The stream version from which the field is sent. */
  readonly versionId: number;
  /** The field is sent only when a test function says so (`VMSTATE_*_TEST`). */
  readonly fieldExists: boolean;
  /** Bytes on the wire (for a struct: the struct's size in memory, not compared). */
  readonly size: number;
  /** Present when the field is a nested struct (`VMSTATE_STRUCT`). */
  readonly description?: VmstateDescription;
}

export interface VmstateDescription {
  readonly name: string;
  readonly versionId: number;
  /** Oldest stream version this side loads; `undefined` when the dump does not say. */
  readonly minimumVersionId?: number;
  readonly fields?: readonly VmstateField[];
  readonly subsections?: readonly VmstateDescription[];
}

export interface VmstateSection {
  /** The key in the dump (the device or handler name). */
  readonly key: string;
  /** The section's `Name` (usually equal to `key`). */
  readonly name: string;
  readonly versionId: number;
  readonly minimumVersionId: number;
  readonly description?: VmstateDescription;
}

/** Target architectures the reader can tell apart from a dump alone. */
export type VmstateArchitecture = 'x86' | 'arm' | 'ppc' | 's390x' | 'riscv';

export interface VmstateDump {
  /** The machine type the dump was taken for (`vmschkmachine.Name`). */
  readonly machine: string;
  /** The target architecture when the dump reveals it (see `dumpArchitecture`). */
  readonly architecture: VmstateArchitecture | undefined;
  /** Sections in dump order, keyed by their key in the dump. */
  readonly sections: ReadonlyMap<string, VmstateSection>;
}

const MACHINE_KEY = 'vmschkmachine';

/**
 * Machine-type families that exist on one target only. Names shared by several targets
 * (`virt`, `none`) prove nothing and are left out.
 */
const MACHINE_FAMILIES: readonly (readonly [RegExp, VmstateArchitecture])[] = [
  [/^(pc|q35|isapc|microvm|xenfv|xenpv|x-remote)(-|$)/, 'x86'],
  [/^(raspi|vexpress|sbsa-ref|xlnx-|virt-\d|versatile|realview|musca|mps2|mps3)/, 'arm'],
  [/^(pseries|powernv|mac99|g3beige|ppce500|bamboo|sam460ex)/, 'ppc'],
  [/^s390-ccw-virtio/, 's390x'],
  [/^(sifive_|spike|shakti_c|opentitan|microchip-icicle-kit)/, 'riscv'],
];

/** Sections only x86 builds register (the i8042-era PC chipset and KVM's x86 helpers). */
const X86_ONLY_SECTIONS = ['port92', 'kvmvapic', 'kvmclock', 'PIIX3'];

/**
 * The target architecture of a dump: from its machine type's family, else from sections
 * only one target has; `undefined` when neither tells. (`virt-*` names an Arm type on
 * aarch64 and `virt` alone also exists on riscv and others, so only versioned `virt-X.Y`
 * counts as Arm.)
 */
export function dumpArchitecture(
  machine: string,
  sectionKeys: Iterable<string>,
): VmstateArchitecture | undefined {
  for (const [pattern, arch] of MACHINE_FAMILIES) if (pattern.test(machine)) return arch;
  const keys = new Set(sectionKeys);
  if (X86_ONLY_SECTIONS.some((k) => keys.has(k))) return 'x86';
  return undefined;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeJson(value: Json | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function keyPath(parent: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
    ? `${parent}.${key}`
    : `${parent}[${JSON.stringify(key)}]`;
}

class Reader {
  constructor(private readonly source: string) {}

  fail(path: string, detail: string): never {
    throw new VmstateDumpError('shape', this.source, detail, { path });
  }

  object(value: Json | undefined, path: string): { [key: string]: Json } {
    if (!isObject(value)) this.fail(path, `expected an object, found ${describeJson(value)}`);
    return value;
  }

  string(obj: { [key: string]: Json }, key: string, path: string): string {
    const value = obj[key];
    if (typeof value !== 'string')
      this.fail(keyPath(path, key), `expected a string, found ${describeJson(value)}`);
    return value;
  }

  integer(obj: { [key: string]: Json }, key: string, path: string): number {
    const value = obj[key];
    if (typeof value !== 'number' || !Number.isInteger(value))
      this.fail(keyPath(path, key), `expected an integer, found ${describeJson(value)}`);
    return value;
  }

  boolean(obj: { [key: string]: Json }, key: string, path: string): boolean {
    const value = obj[key];
    if (typeof value !== 'boolean')
      this.fail(keyPath(path, key), `expected a boolean, found ${describeJson(value)}`);
    return value;
  }

  array(obj: { [key: string]: Json }, key: string, path: string): Json[] | undefined {
    const value = obj[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value))
      this.fail(keyPath(path, key), `expected an array, found ${describeJson(value)}`);
    return value;
  }

  description(value: Json | undefined, path: string): VmstateDescription {
    const obj = this.object(value, path);
    const fieldsJson = this.array(obj, 'Fields', path);
    const subsJson = this.array(obj, 'Subsections', path);
    const fields = fieldsJson?.map((f, i) => this.field(f, `${path}.Fields[${i}]`));
    const subsections = subsJson?.map((s, i) => this.description(s, `${path}.Subsections[${i}]`));
    return {
      name: this.string(obj, 'name', path),
      versionId: this.integer(obj, 'version_id', path),
      ...(obj.minimum_version_id === undefined
        ? {}
        : { minimumVersionId: this.integer(obj, 'minimum_version_id', path) }),
      ...(fields === undefined ? {} : { fields }),
      ...(subsections === undefined ? {} : { subsections }),
    };
  }

  field(value: Json | undefined, path: string): VmstateField {
    const obj = this.object(value, path);
    return {
      name: this.string(obj, 'field', path),
      versionId: this.integer(obj, 'version_id', path),
      fieldExists: this.boolean(obj, 'field_exists', path),
      size: this.integer(obj, 'size', path),
      ...(obj.Description === undefined
        ? {}
        : { description: this.description(obj.Description, `${path}.Description`) }),
    };
  }

  section(key: string, value: Json | undefined): VmstateSection {
    const path = keyPath('$', key);
    const obj = this.object(value, path);
    return {
      key,
      name: this.string(obj, 'Name', path),
      versionId: this.integer(obj, 'version_id', path),
      minimumVersionId: this.integer(obj, 'minimum_version_id', path),
      ...(obj.Description === undefined
        ? {}
        : { description: this.description(obj.Description, `${path}.Description`) }),
    };
  }
}

/**
 * Reads the text of a `-dump-vmstate` file. `source` names it in errors (a file name, a
 * binary). Throws `VmstateDumpError`: `empty` (QEMU leaves an empty file when it fails
 * before dumping), `not-json`, or `shape` with the JSON path that is wrong.
 */
export function parseVmstateDump(text: string, source = 'vmstate dump'): VmstateDump {
  if (text.trim() === '')
    throw new VmstateDumpError(
      'empty',
      source,
      'the dump is empty (QEMU creates the file before it fails; see its stderr)',
    );
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch (error) {
    throw new VmstateDumpError(
      'not-json',
      source,
      `not JSON: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return readVmstateDump(json, source);
}

/** Like `parseVmstateDump`, for JSON already parsed. */
export function readVmstateDump(json: unknown, source = 'vmstate dump'): VmstateDump {
  const reader = new Reader(source);
  const root = reader.object(json as Json, '$');
  const machineJson = root[MACHINE_KEY];
  if (machineJson === undefined)
    reader.fail(
      '$',
      `no "${MACHINE_KEY}" key: this is not a -dump-vmstate dump (QEMU always writes the machine type there)`,
    );
  const machine = reader.string(
    reader.object(machineJson, `$.${MACHINE_KEY}`),
    'Name',
    `$.${MACHINE_KEY}`,
  );
  const sections = new Map<string, VmstateSection>();
  for (const [key, value] of Object.entries(root)) {
    if (key === MACHINE_KEY) continue;
    sections.set(key, reader.section(key, value));
  }
  return { machine, architecture: dumpArchitecture(machine, sections.keys()), sections };
}
