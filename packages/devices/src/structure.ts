/**
 * Shape checks for a configuration that may come from anywhere (a stored JSON file, plain
 * JavaScript): every field of the right JSON type, no unknown keys, device properties of
 * the types the driver table declares. QAPI-described parts are only checked for the keys
 * the model itself needs (`id`, `node-name`, `driver`, …); the schema check in `validate`
 * does the rest with the generated validator.
 */
import { BUILTIN_RANGES } from '@qmpkit/qapi/runtime-v1';
import { driverSpec, type PropKind } from './drivers.js';
import { type ConfigProblem, type ProblemSubject, problem } from './problems.js';

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

type Kind = 'string' | 'boolean' | 'integer' | 'object' | 'array' | 'scalar';

function hasKind(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'object':
      return isRecord(value);
    case 'array':
      return Array.isArray(value);
    case 'scalar':
      return (
        typeof value === 'string' ||
        typeof value === 'boolean' ||
        (typeof value === 'number' && Number.isFinite(value))
      );
  }
}

const KIND_WORDS: Record<Kind, string> = {
  string: 'a string',
  boolean: 'a boolean',
  integer: 'an integer',
  object: 'an object',
  array: 'an array',
  scalar: 'a string, number or boolean',
};

class Checker {
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly root: string) {}

  at(path: string): string {
    return path === '' ? this.root : `${this.root}.${path}`;
  }

  fail(
    subject: ProblemSubject,
    field: string,
    path: string,
    text: string,
    code: ConfigProblem['code'] = 'format',
  ): void {
    this.problems.push(problem(code, subject, field, this.at(path), text));
  }

  /** Checks `record[key]`; returns whether it is present and of the kind. */
  field(
    subject: ProblemSubject,
    record: Json,
    key: string,
    kind: Kind,
    path: string,
    required: boolean,
    fieldName = key,
  ): boolean {
    const value = record[key];
    if (value === undefined) {
      if (required)
        this.fail(subject, fieldName, path, `is missing (expected ${KIND_WORDS[kind]})`);
      return false;
    }
    if (!hasKind(value, kind)) {
      this.fail(subject, fieldName, path, `must be ${KIND_WORDS[kind]}, not ${describe(value)}`);
      return false;
    }
    return true;
  }

  unknownKeys(
    subject: ProblemSubject,
    record: Json,
    known: readonly string[],
    path: string,
    what: string,
  ): void {
    for (const key of Object.keys(record)) {
      if (record[key] !== undefined && !known.includes(key))
        this.fail(subject, key, path === '' ? key : `${path}.${key}`, `is not a field of ${what}`);
    }
  }

  scalarRecord(subject: ProblemSubject, record: Json, key: string, path: string): void {
    if (!this.field(subject, record, key, 'object', path, false)) return;
    const inner = record[key] as Json;
    for (const [k, v] of Object.entries(inner)) {
      if (!hasKind(v, 'scalar'))
        this.fail(
          subject,
          `${key}.${k}`,
          `${path}.${k}`,
          `must be ${KIND_WORDS.scalar}, not ${describe(v)}`,
        );
    }
  }
}

const TOP_KEYS = [
  'machine',
  'accel',
  'cpu',
  'memory',
  'smp',
  'boot',
  'nodefaults',
  'display',
  'paused',
  'incoming',
  'qmp',
  'objects',
  'chardevs',
  'netdevs',
  'blockdevs',
  'devices',
  'staticArgs',
] as const;

const SMP_KEYS = ['cpus', 'maxcpus', 'sockets', 'dies', 'clusters', 'cores', 'threads'] as const;

function propKindOk(kind: PropKind, value: unknown): boolean {
  if (kind === 'str') return typeof value === 'string';
  if (kind === 'bool') return typeof value === 'boolean';
  if (typeof kind === 'string') {
    const range = BUILTIN_RANGES[kind];
    return (
      typeof value === 'number' &&
      Number.isInteger(value) &&
      (range === undefined || (value >= range[0] && value <= range[1]))
    );
  }
  return typeof value === 'string' && kind.includes(value);
}

function propKindWords(kind: PropKind): string {
  if (kind === 'str') return 'a string';
  if (kind === 'bool') return 'a boolean';
  if (typeof kind === 'string') {
    const range = BUILTIN_RANGES[kind];
    return range ? `an integer in ${range[0]}..${range[1]} (${kind})` : `an integer (${kind})`;
  }
  return `one of ${kind.map((k) => `'${k}'`).join(', ')}`;
}

function itemSubject(
  kind: ProblemSubject['kind'],
  value: unknown,
  idKey: string,
  index: number,
): ProblemSubject {
  const id = isRecord(value) ? value[idKey] : undefined;
  return { kind, id: typeof id === 'string' && id !== '' ? id : `[${index}]` };
}

/**
 * Checks the shape of a configuration. `root` is the JSONPath of the configuration itself
 * (`$` for a bare config, `$.config` inside a stored document).
 */
export function checkStructure(config: unknown, root = '$'): ConfigProblem[] {
  const c = new Checker(root);
  const configSubject: ProblemSubject = { kind: 'config', id: '' };
  if (!isRecord(config)) {
    c.fail(configSubject, '', '', `must be an object, not ${describe(config)}`);
    return c.problems;
  }
  c.unknownKeys(configSubject, config, TOP_KEYS, '', 'a VM configuration');

  // machine
  const machineSubject: ProblemSubject = { kind: 'machine', id: '' };
  if (c.field(configSubject, config, 'machine', 'object', 'machine', true)) {
    const m = config.machine as Json;
    c.unknownKeys(
      machineSubject,
      m,
      ['type', 'pflash0', 'pflash1', 'memory-backend', 'props'],
      'machine',
      'machine',
    );
    c.field(machineSubject, m, 'type', 'string', 'machine.type', true);
    for (const key of ['pflash0', 'pflash1', 'memory-backend'])
      c.field(machineSubject, m, key, 'string', `machine.${key}`, false);
    c.scalarRecord(machineSubject, m, 'props', 'machine.props');
  }

  // accel
  if (c.field(configSubject, config, 'accel', 'array', 'accel', false)) {
    (config.accel as unknown[]).forEach((a, i) => {
      const subject: ProblemSubject = { kind: 'accel', id: `[${i}]` };
      if (typeof a === 'string') return;
      if (!isRecord(a)) {
        c.fail(
          subject,
          '',
          `accel[${i}]`,
          `must be a string or { type, props }, not ${describe(a)}`,
        );
        return;
      }
      c.unknownKeys(subject, a, ['type', 'props'], `accel[${i}]`, 'an accelerator');
      c.field(subject, a, 'type', 'string', `accel[${i}].type`, true);
      c.scalarRecord(subject, a, 'props', `accel[${i}].props`);
    });
  }

  c.field({ kind: 'cpu', id: '' }, config, 'cpu', 'string', 'cpu', false, '');

  // memory
  const memorySubject: ProblemSubject = { kind: 'memory', id: '' };
  if (c.field(configSubject, config, 'memory', 'object', 'memory', true)) {
    const m = config.memory as Json;
    c.unknownKeys(memorySubject, m, ['size', 'slots', 'max-size'], 'memory', 'memory');
    c.field(memorySubject, m, 'size', 'integer', 'memory.size', true);
    c.field(memorySubject, m, 'slots', 'integer', 'memory.slots', false);
    c.field(memorySubject, m, 'max-size', 'integer', 'memory.max-size', false);
  }

  if (c.field(configSubject, config, 'smp', 'object', 'smp', false)) {
    const s = config.smp as Json;
    const subject: ProblemSubject = { kind: 'smp', id: '' };
    c.unknownKeys(subject, s, SMP_KEYS, 'smp', 'smp');
    for (const key of SMP_KEYS) c.field(subject, s, key, 'integer', `smp.${key}`, false);
  }

  if (c.field(configSubject, config, 'boot', 'object', 'boot', false)) {
    const b = config.boot as Json;
    const subject: ProblemSubject = { kind: 'boot', id: '' };
    c.unknownKeys(
      subject,
      b,
      ['order', 'once', 'menu', 'strict', 'reboot-timeout'],
      'boot',
      'boot',
    );
    c.field(subject, b, 'order', 'string', 'boot.order', false);
    c.field(subject, b, 'once', 'string', 'boot.once', false);
    c.field(subject, b, 'menu', 'boolean', 'boot.menu', false);
    c.field(subject, b, 'strict', 'boolean', 'boot.strict', false);
    c.field(subject, b, 'reboot-timeout', 'integer', 'boot.reboot-timeout', false);
  }

  c.field(configSubject, config, 'nodefaults', 'boolean', 'nodefaults', false);
  c.field(configSubject, config, 'paused', 'boolean', 'paused', false);
  if (config.display !== undefined && config.display !== 'none')
    c.fail(
      configSubject,
      'display',
      'display',
      `must be 'none', not ${describe(config.display)} (other displays go into staticArgs)`,
    );
  if (config.incoming !== undefined && config.incoming !== 'defer')
    c.fail(
      configSubject,
      'incoming',
      'incoming',
      `must be 'defer', not ${describe(config.incoming)}`,
    );

  if (c.field(configSubject, config, 'qmp', 'object', 'qmp', false)) {
    const q = config.qmp as Json;
    const subject: ProblemSubject = { kind: 'qmp', id: '' };
    c.unknownKeys(subject, q, ['chardev'], 'qmp', 'the QMP slot');
    c.field(subject, q, 'chardev', 'string', 'qmp.chardev', true);
  }

  const section = (
    key: 'objects' | 'chardevs' | 'netdevs' | 'blockdevs' | 'devices',
    each: (value: unknown, index: number, path: string) => void,
  ) => {
    if (!c.field(configSubject, config, key, 'array', key, false)) return;
    for (const [index, value] of (config[key] as unknown[]).entries()) {
      each(value, index, `${key}[${index}]`);
    }
  };

  section('objects', (o, i, path) => {
    const subject = itemSubject('object', o, 'id', i);
    if (!isRecord(o)) return c.fail(subject, '', path, `must be an object, not ${describe(o)}`);
    c.field(subject, o, 'qom-type', 'string', `${path}.qom-type`, true);
    c.field(subject, o, 'id', 'string', `${path}.id`, true);
  });
  section('chardevs', (o, i, path) => {
    const subject = itemSubject('chardev', o, 'id', i);
    if (!isRecord(o)) return c.fail(subject, '', path, `must be an object, not ${describe(o)}`);
    c.field(subject, o, 'id', 'string', `${path}.id`, true);
    if (c.field(subject, o, 'backend', 'object', `${path}.backend`, true))
      c.field(
        subject,
        o.backend as Json,
        'type',
        'string',
        `${path}.backend.type`,
        true,
        'backend.type',
      );
  });
  section('netdevs', (o, i, path) => {
    const subject = itemSubject('netdev', o, 'id', i);
    if (!isRecord(o)) return c.fail(subject, '', path, `must be an object, not ${describe(o)}`);
    c.field(subject, o, 'id', 'string', `${path}.id`, true);
    c.field(subject, o, 'type', 'string', `${path}.type`, true);
  });
  section('blockdevs', (o, i, path) => {
    const subject = itemSubject('node', o, 'node-name', i);
    if (!isRecord(o)) return c.fail(subject, '', path, `must be an object, not ${describe(o)}`);
    c.field(subject, o, 'driver', 'string', `${path}.driver`, true);
    c.field(subject, o, 'node-name', 'string', `${path}.node-name`, true);
  });
  section('devices', (o, i, path) => {
    const subject = itemSubject('device', o, 'id', i);
    if (!isRecord(o)) return c.fail(subject, '', path, `must be an object, not ${describe(o)}`);
    const hasDriver = c.field(subject, o, 'driver', 'string', `${path}.driver`, true);
    c.field(subject, o, 'id', 'string', `${path}.id`, true);
    c.field(subject, o, 'bus', 'string', `${path}.bus`, false);
    if (o.props !== undefined) {
      c.unknownKeys(
        subject,
        o,
        ['driver', 'id', 'bus', 'props'],
        path,
        'a generic device ({ driver, id, bus, props })',
      );
      c.scalarRecord(subject, o, 'props', `${path}.props`);
      if (!isRecord(o.props)) return;
      for (const key of ['driver', 'id', 'bus']) {
        if (o.props[key] !== undefined)
          c.fail(
            subject,
            `props.${key}`,
            `${path}.props.${key}`,
            `belongs next to props, not inside them`,
          );
      }
      // A typed driver written in the generic form: its known properties are still typed.
      const known = hasDriver ? driverSpec(o.driver as string) : undefined;
      if (known) {
        for (const [key, prop] of Object.entries(known.props)) {
          const value = o.props[key];
          if (value === undefined) {
            if (prop.required)
              c.fail(
                subject,
                `props.${key}`,
                `${path}.props.${key}`,
                `is required by ${o.driver as string} (${propKindWords(prop.kind)})`,
                'property-type',
              );
          } else if (hasKind(value, 'scalar') && !propKindOk(prop.kind, value)) {
            c.fail(
              subject,
              `props.${key}`,
              `${path}.props.${key}`,
              `must be ${propKindWords(prop.kind)}, not ${describe(value)}`,
              'property-type',
            );
          }
        }
      }
      return;
    }
    if (!hasDriver) return;
    const driver = o.driver as string;
    const spec = driverSpec(driver);
    if (!spec) {
      c.fail(
        subject,
        'driver',
        `${path}.driver`,
        `'${driver}' is not a driver this model types; write the device as { driver, id, bus?, props: { … } }`,
        'unknown-property',
      );
      return;
    }
    for (const [key, value] of Object.entries(o)) {
      if (key === 'driver' || key === 'id' || key === 'bus' || value === undefined) continue;
      const prop = spec.props[key];
      if (!prop) {
        c.fail(
          subject,
          key,
          `${path}.${key}`,
          `is not a property of ${driver} in this model; use the generic form { driver, id, props } for other properties`,
          'unknown-property',
        );
      } else if (!propKindOk(prop.kind, value)) {
        c.fail(
          subject,
          key,
          `${path}.${key}`,
          `must be ${propKindWords(prop.kind)}, not ${describe(value)}`,
          'property-type',
        );
      }
    }
    for (const [key, prop] of Object.entries(spec.props)) {
      if (prop.required && o[key] === undefined)
        c.fail(
          subject,
          key,
          `${path}.${key}`,
          `is required by ${driver} (${propKindWords(prop.kind)})`,
          'property-type',
        );
    }
  });

  if (c.field(configSubject, config, 'staticArgs', 'array', 'staticArgs', false)) {
    (config.staticArgs as unknown[]).forEach((a, i) => {
      if (typeof a !== 'string')
        c.fail(
          { kind: 'static', id: `[${i}]` },
          '',
          `staticArgs[${i}]`,
          `must be a string, not ${describe(a)}`,
        );
    });
  }
  return c.problems;
}
