/**
 * Checks a configuration before launch or hot-plug and reports every problem found.
 */
import { validateArgs } from '@qmpkit/qapi';
import {
  deviceBus,
  deviceDriver,
  isGenericItem,
  machineBuses,
  providedBuses,
  resolveBus,
} from './buses.js';
import { chardevCli } from './chardev-cli.js';
import { type BusKind, driverSpec } from './drivers.js';
import { ConfigValidationError } from './errors.js';
import { isValidKey } from './keyval.js';
import { accelParts, type DeviceConfig, deviceProps, type VmConfig } from './model.js';
import { dependencyGraph, dependencyOrder } from './order.js';
import { type ConfigProblem, type ProblemSubject, problem } from './problems.js';
import { type Item, type ItemKind, KIND_NOUN, scanReferences } from './refs.js';
import { checkStructure } from './structure.js';

/** QEMU's `id_wellformed()`: a letter, then letters, digits, `-`, `.`, `_`. */
const WELL_FORMED_ID = /^[A-Za-z][A-Za-z0-9._-]*$/;
/** Block node names live in a 32-byte buffer (`BlockDriverState.node_name`). */
const MAX_NODE_NAME = 31;
/** Machine types, accelerators and CPU models: plain names, never an option string or `help`. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

const SUBJECT_KIND: Readonly<Record<ItemKind, ProblemSubject['kind']>> = {
  object: 'object',
  chardev: 'chardev',
  netdev: 'netdev',
  node: 'node',
  device: 'device',
};

export function itemSubject(item: Item): ProblemSubject {
  return { kind: SUBJECT_KIND[item.kind], id: item.id === '' ? `[${item.index}]` : item.id };
}

const MACHINE: ProblemSubject = { kind: 'machine', id: '' };

/** The QMP command whose arguments each QAPI-typed section is. */
const SCHEMA_COMMAND: Partial<Record<ItemKind, string>> = {
  object: 'object-add',
  chardev: 'chardev-add',
  netdev: 'netdev_add',
  node: 'blockdev-add',
};

function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name) && name !== 'help';
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** Every string in `value` with its JSONPath, for the NUL-byte check. */
function* strings(value: unknown, path: string): Generator<[string, string]> {
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value))
    for (const [i, v] of value.entries()) yield* strings(v, `${path}[${i}]`);
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) yield* strings(v, `${path}.${k}`);
}

export interface ValidateOptions {
  /**
   * Skip the checks that only matter for a cold start (chardev backends the 7.2 command
   * line cannot express). `plug` uses this: hot-plugged chardevs go through `chardev-add`.
   */
  readonly hotplugOnly?: boolean;
}

/**
 * Every problem with `config`, each naming its object and field, e.g.
 * `device 'vd0': drive 'disk9' names no block node`. Empty when the configuration is valid.
 * Shape problems (wrong JSON types, unknown fields) are reported alone: the remaining
 * checks need a well-formed configuration.
 */
export function validate(config: VmConfig, options: ValidateOptions = {}): ConfigProblem[] {
  const structural = checkStructure(config);
  if (structural.length > 0) return structural;
  const problems: ConfigProblem[] = [];
  const graph = dependencyGraph(config);
  const { items, index } = graph;

  // NUL bytes cannot pass through argv (and QEMU's JSON parser rejects them).
  for (const [path, s] of strings(config, '$')) {
    if (s.includes('\0'))
      problems.push(
        problem(
          'invalid-value',
          { kind: 'config', id: '' },
          path.slice(2),
          path,
          'contains a NUL byte',
        ),
      );
  }

  // Ids: well-formed, unique per namespace.
  const firstById = new Map<string, Item>();
  for (const item of items) {
    const subject = itemSubject(item);
    const field = item.kind === 'node' ? 'node-name' : 'id';
    const path = `${item.path}.${field}`;
    if (!WELL_FORMED_ID.test(item.id)) {
      problems.push(
        problem(
          'invalid-id',
          subject,
          field,
          path,
          `'${item.id}' is not a valid id (a letter, then letters, digits, '-', '.', '_')`,
        ),
      );
    } else if (item.kind === 'node' && item.id.length > MAX_NODE_NAME) {
      problems.push(
        problem(
          'invalid-id',
          subject,
          field,
          path,
          `'${item.id}' is longer than ${MAX_NODE_NAME} characters`,
        ),
      );
    }
    const key = `${item.kind}:${item.id}`;
    const first = firstById.get(key);
    if (first && item.id !== '') {
      problems.push(
        problem(
          'duplicate-id',
          subject,
          field,
          path,
          `'${item.id}' is already used by ${first.path} (${KIND_NOUN[item.kind]} names must be unique)`,
        ),
      );
    } else firstById.set(key, item);
  }

  // Values QEMU's schema rejects, found by the generated validator.
  for (const item of items) {
    const command = SCHEMA_COMMAND[item.kind];
    if (!command) continue;
    for (const p of validateArgs(command, item.value)) {
      const field = p.path === '$' ? '' : p.path.slice(2);
      problems.push(
        problem('schema', itemSubject(item), field, `${item.path}${p.path.slice(1)}`, p.message, p),
      );
    }
  }

  // References: they must name something, of the right kind.
  const scan = scanReferences(config, items);
  for (const ref of scan.references) {
    const subject = ref.from ? itemSubject(ref.from) : MACHINE;
    const target = index.get(ref.target.kind)?.get(ref.name);
    const noun =
      ref.target.qomTypes?.length === 1
        ? `${ref.target.qomTypes[0]} object`
        : KIND_NOUN[ref.target.kind];
    if (!target) {
      problems.push(
        problem(
          'dangling-reference',
          subject,
          ref.field,
          ref.path,
          `'${ref.name}' names no ${noun}`,
        ),
      );
      continue;
    }
    const qomTypes = ref.target.qomTypes;
    const qomType = record(target.value)['qom-type'];
    if (qomTypes && typeof qomType === 'string' && !qomTypes.includes(qomType)) {
      problems.push(
        problem(
          'wrong-kind',
          subject,
          ref.field,
          ref.path,
          `'${ref.name}' is a ${qomType} object, expected qom-type ${qomTypes.join(' or ')}`,
        ),
      );
    }
  }
  for (const inline of scan.inline) {
    problems.push(
      problem(
        'inline-node',
        itemSubject(inline.from),
        inline.field,
        inline.path,
        'is defined inline; give the child its own block node and name it here (the block graph needs every node named)',
      ),
    );
  }

  // Cycles (backing chains that loop, a bridge behind itself, …).
  for (const cycle of dependencyOrder(graph).cycles) {
    const first = cycle[0] as Item;
    const dep = graph.dependencies.find((d) => d.from === first && d.to === cycle[1]);
    const allNodes = cycle.every((i) => i.kind === 'node');
    const names = cycle.map((i) => i.id).join(' → ');
    problems.push(
      problem(
        'cycle',
        itemSubject(first),
        dep?.field ?? '',
        dep ? `${first.path}.${dep.field}` : first.path,
        allNodes ? `makes the block graph loop: ${names}` : `makes a dependency loop: ${names}`,
      ),
    );
  }

  checkDevices(config, items, problems);
  checkMachine(config, graph.index, problems);

  // The QMP slot's chardev id is reserved.
  if (config.qmp) {
    const id = config.qmp.chardev;
    const subject: ProblemSubject = { kind: 'qmp', id: '' };
    if (!WELL_FORMED_ID.test(id))
      problems.push(
        problem('invalid-id', subject, 'chardev', '$.qmp.chardev', `'${id}' is not a valid id`),
      );
    const clash = index.get('chardev')?.get(id);
    if (clash)
      problems.push(
        problem(
          'duplicate-id',
          subject,
          'chardev',
          '$.qmp.chardev',
          `'${id}' is reserved for the QMP monitor but ${clash.path} uses it too`,
        ),
      );
  }

  // Chardevs must be expressible on 7.2's -chardev command line.
  if (!options.hotplugOnly) {
    for (const item of items) {
      if (item.kind !== 'chardev') continue;
      const v = record(item.value);
      const backend = v.backend as Parameters<typeof chardevCli>[1];
      const result = chardevCli(item.id, backend);
      if (!result.ok) {
        for (const u of result.unsupported)
          problems.push(
            problem(
              'unsupported-on-cli',
              itemSubject(item),
              `backend.${u.field}`,
              `${item.path}.backend.${u.field}`,
              `${u.reason} (hot-plug it with chardev-add, or pass it in staticArgs)`,
            ),
          );
      }
    }
  }
  return problems;
}

/** Like `validate`, but throws a `ConfigValidationError` listing every problem. */
export function assertValid(config: VmConfig, options: ValidateOptions = {}): void {
  const problems = validate(config, options);
  if (problems.length > 0) throw new ConfigValidationError(problems);
}

function checkDevices(config: VmConfig, items: readonly Item[], problems: ConfigProblem[]): void {
  const devices = items.filter((i) => i.kind === 'device');
  const machine = machineBuses(config.machine.type);
  const provided = providedBuses(devices);
  const anyUntyped = devices.some((d) => isGenericItem(d) && !driverSpec(deviceDriver(d)));
  const available = new Set<BusKind>(
    [...(machine ?? []), ...provided].flatMap((b) => (b.kind ? [b.kind] : [])),
  );
  const nodes = new Map(
    items.filter((i) => i.kind === 'node').map((i) => [i.id, record(i.value)] as const),
  );
  const slots = new Map<string, Item>();
  const drives = new Map<string, Item[]>();

  for (const device of devices) {
    const subject = itemSubject(device);
    const driver = deviceDriver(device);
    const spec = driverSpec(driver);
    const busName = deviceBus(device);
    let busKind: BusKind | undefined;
    if (busName !== undefined) {
      const resolved = resolveBus(busName, machine, provided, devices);
      if (!resolved.ok) {
        problems.push(
          problem('unknown-bus', subject, 'bus', `${device.path}.bus`, resolved.reason),
        );
        continue;
      }
      busKind = resolved.bus?.kind;
      if (spec && busKind && busKind !== spec.bus) {
        problems.push(
          problem(
            'bus-kind',
            subject,
            'bus',
            `${device.path}.bus`,
            `'${busName}' is ${article(busKind)} ${busKind} bus, but ${driver} plugs into ${article(spec.bus)} ${spec.bus} bus`,
          ),
        );
      }
    } else if (spec && machine !== undefined && !anyUntyped && !available.has(spec.bus)) {
      const hint: Partial<Record<BusKind, string>> = {
        scsi: ' (add a virtio-scsi-pci controller)',
        'virtio-serial': ' (add a virtio-serial-pci controller)',
      };
      problems.push(
        problem(
          'no-bus',
          subject,
          'bus',
          `${device.path}.bus`,
          `is not given and no ${spec.bus} bus exists for ${driver}${hint[spec.bus] ?? ''}`,
        ),
      );
    }

    const props = deviceProps(device.value as DeviceConfig);
    // Two devices on one address of one bus.
    const kind = spec?.bus;
    let slot: string | undefined;
    if (kind === 'ide' && props.unit !== undefined) slot = `ide:${busName ?? '*'}:${props.unit}`;
    if (kind === 'scsi' && props['scsi-id'] !== undefined)
      slot = `scsi:${busName ?? '*'}:${props.channel ?? 0}:${props['scsi-id']}:${props.lun ?? 0}`;
    if (kind === 'pci' && typeof props.addr === 'string')
      slot = `pci:${busName ?? '*'}:${normalizePciAddr(props.addr)}`;
    if (slot !== undefined) {
      const other = slots.get(slot);
      if (other)
        problems.push(
          problem(
            'conflict',
            subject,
            kind === 'pci' ? 'addr' : kind === 'ide' ? 'unit' : 'scsi-id',
            device.path,
            `takes the same bus address as device '${other.id}'`,
          ),
        );
      else slots.set(slot, device);
    }
    if (typeof props.drive === 'string')
      drives.set(props.drive, [...(drives.get(props.drive) ?? []), device]);
  }

  // A writable node attached to two devices needs share-rw on both.
  for (const [drive, users] of drives) {
    if (users.length < 2) continue;
    const node = nodes.get(drive);
    if (!node || node['read-only'] === true) continue;
    if (users.every((u) => deviceProps(u.value as DeviceConfig)['share-rw'] === true)) continue;
    const [first, ...rest] = users as [Item, ...Item[]];
    for (const other of rest)
      problems.push(
        problem(
          'conflict',
          itemSubject(other),
          'drive',
          `${other.path}.drive`,
          `'${drive}' is already the drive of device '${first.id}' (QEMU refuses a second writer unless both set share-rw)`,
        ),
      );
  }
  // pflash nodes cannot also be device drives.
  for (const slot of ['pflash0', 'pflash1'] as const) {
    const name = config.machine[slot];
    const users = name === undefined ? undefined : drives.get(name);
    if (name !== undefined && users?.[0])
      problems.push(
        problem(
          'conflict',
          MACHINE,
          slot,
          `$.machine.${slot}`,
          `'${name}' is also the drive of device '${users[0].id}'`,
        ),
      );
  }
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

function normalizePciAddr(addr: string): string {
  const m = /^(?:0x)?([0-9a-fA-F]+)(?:\.([0-7]))?$/.exec(addr.trim());
  if (!m) return addr;
  return `${Number.parseInt(m[1] ?? '0', 16)}.${m[2] ?? '0'}`;
}

function checkMachine(
  config: VmConfig,
  index: ReturnType<typeof dependencyGraph>['index'],
  problems: ConfigProblem[],
): void {
  const m = config.machine;
  if (!isPlainName(m.type))
    problems.push(
      problem(
        'invalid-value',
        MACHINE,
        'type',
        '$.machine.type',
        `'${m.type}' is not a machine type name`,
      ),
    );
  for (const key of Object.keys(m.props ?? {})) {
    if (!isValidKey(key))
      problems.push(
        problem(
          'invalid-value',
          MACHINE,
          `props.${key}`,
          `$.machine.props.${key}`,
          'is not a valid option key',
        ),
      );
    else if (['type', 'pflash0', 'pflash1', 'memory-backend'].includes(key))
      problems.push(
        problem(
          'conflict',
          MACHINE,
          `props.${key}`,
          `$.machine.props.${key}`,
          `duplicates machine.${key}; set it there`,
        ),
      );
    else if (key === 'accel')
      problems.push(
        problem(
          'conflict',
          MACHINE,
          'props.accel',
          '$.machine.props.accel',
          'cannot be combined with -accel (QEMU: \'The -accel and "-machine accel=" options are incompatible\'); use accel',
        ),
      );
  }

  const seen = new Set<string>();
  (config.accel ?? []).forEach((a, i) => {
    const { type, props } = accelParts(a);
    const subject: ProblemSubject = { kind: 'accel', id: `[${i}]` };
    if (!isPlainName(type))
      problems.push(
        problem(
          'invalid-value',
          subject,
          'type',
          `$.accel[${i}]`,
          `'${type}' is not an accelerator name`,
        ),
      );
    if (seen.has(type))
      problems.push(
        problem('duplicate-id', subject, 'type', `$.accel[${i}]`, `'${type}' is listed twice`),
      );
    seen.add(type);
    for (const key of Object.keys(props))
      if (!isValidKey(key))
        problems.push(
          problem(
            'invalid-value',
            subject,
            `props.${key}`,
            `$.accel[${i}].props.${key}`,
            'is not a valid option key',
          ),
        );
  });
  if (config.cpu !== undefined && !isPlainName(config.cpu))
    problems.push(
      problem(
        'invalid-value',
        { kind: 'cpu', id: '' },
        '',
        '$.cpu',
        `'${config.cpu}' is not a CPU model name (CPU properties go into staticArgs)`,
      ),
    );

  const memory: ProblemSubject = { kind: 'memory', id: '' };
  const size = config.memory.size;
  if (size <= 0)
    problems.push(
      problem('invalid-value', memory, 'size', '$.memory.size', `must be positive, not ${size}`),
    );
  const max = config.memory['max-size'];
  if (max !== undefined && max < size)
    problems.push(
      problem('conflict', memory, 'max-size', '$.memory.max-size', `${max} is below size ${size}`),
    );
  if (config.memory.slots !== undefined && config.memory.slots < 0)
    problems.push(
      problem('invalid-value', memory, 'slots', '$.memory.slots', 'must not be negative'),
    );
  for (const [key, value] of Object.entries(config.smp ?? {}))
    if (typeof value === 'number' && value < 1)
      problems.push(
        problem(
          'invalid-value',
          { kind: 'smp', id: '' },
          key,
          `$.smp.${key}`,
          `must be at least 1, not ${value}`,
        ),
      );

  const backendId = m['memory-backend'];
  const backend =
    backendId === undefined ? undefined : record(index.get('object')?.get(backendId)?.value);
  if (backend && typeof backend.size === 'number' && backend.size !== size)
    problems.push(
      problem(
        'conflict',
        MACHINE,
        'memory-backend',
        '$.machine.memory-backend',
        `'${backendId}' has size ${backend.size} but memory.size is ${size} (QEMU requires them equal)`,
      ),
    );
}
