/**
 * Items of a configuration and the references between them. Block-node children are found
 * from QEMU's schema tables (every member typed `BlockdevRef`, `BlockdevRefOrNull` or
 * `[BlockdevRef]` of the driver's branch), so all 40-odd block drivers are covered without a
 * hand-written list; the other references are listed here by hand.
 */
import { tables } from '@qmpkit/qapi';
import { driverSpec } from './drivers.js';
import type { Scalar, VmConfig } from './model.js';

export type ItemKind = 'object' | 'chardev' | 'netdev' | 'node' | 'device';

/** One object, chardev, netdev, block node or device of a configuration. */
export interface Item {
  readonly kind: ItemKind;
  /** Its id (node name for nodes); may be empty or ill-formed in invalid configs. */
  readonly id: string;
  /** Index in its section. */
  readonly index: number;
  /** JSONPath of the item, e.g. `$.blockdevs[3]`. */
  readonly path: string;
  /** The item itself. */
  readonly value: unknown;
}

export const SECTIONS: Readonly<
  Record<ItemKind, 'objects' | 'chardevs' | 'netdevs' | 'blockdevs' | 'devices'>
> = {
  object: 'objects',
  chardev: 'chardevs',
  netdev: 'netdevs',
  node: 'blockdevs',
  device: 'devices',
};

/** Categories in command-line and hot-plug order. */
export const KIND_ORDER: readonly ItemKind[] = ['object', 'chardev', 'netdev', 'node', 'device'];

export const KIND_NOUN: Readonly<Record<ItemKind, string>> = {
  object: 'object',
  chardev: 'chardev',
  netdev: 'netdev',
  node: 'block node',
  device: 'device',
};

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function idOf(kind: ItemKind, value: unknown): string {
  const v = asRecord(value)[kind === 'node' ? 'node-name' : 'id'];
  return typeof v === 'string' ? v : '';
}

export function sectionOf(config: VmConfig, kind: ItemKind): readonly unknown[] {
  const section: unknown = config[SECTIONS[kind]];
  return Array.isArray(section) ? section : [];
}

export function collectItems(config: VmConfig): Item[] {
  const items: Item[] = [];
  for (const kind of KIND_ORDER) {
    sectionOf(config, kind).forEach((value, index) => {
      items.push({
        kind,
        id: idOf(kind, value),
        index,
        path: `$.${SECTIONS[kind]}[${index}]`,
        value,
      });
    });
  }
  return items;
}

/** What a reference points at. `qomTypes` restricts object references to those types. */
export interface RefTarget {
  readonly kind: ItemKind;
  readonly qomTypes?: readonly string[];
}

/** The role a block child plays for its parent. */
export type EdgeRole = 'file' | 'backing' | 'data-file' | 'child';

export interface Reference {
  /** The referring item, or `undefined` for the machine (`pflash0`, `memory-backend`). */
  readonly from: Item | undefined;
  /** Field inside the referrer: `drive`, `backing`, `children[1]`, `backend.data.tls-creds`. */
  readonly field: string;
  readonly path: string;
  readonly target: RefTarget;
  readonly name: string;
  /** For node → node references. */
  readonly role?: EdgeRole;
}

/** A block child given as an inline definition instead of a node name. */
export interface InlineChild {
  readonly from: Item;
  readonly field: string;
  readonly path: string;
}

const MEMORY_BACKENDS = [
  'memory-backend-ram',
  'memory-backend-file',
  'memory-backend-memfd',
  'memory-backend-epc',
];
const SECRETS = ['secret', 'secret_keyring'];
const RNG_BACKENDS = ['rng-random', 'rng-builtin', 'rng-egd'];
const TLS_CREDS = ['tls-creds-anon', 'tls-creds-psk', 'tls-creds-x509'];
const AUTHZ = ['authz-list', 'authz-listfile', 'authz-pam', 'authz-simple'];

/** References from generic devices, by property name. */
const GENERIC_DEVICE_REFS: Readonly<Record<string, RefTarget>> = {
  drive: { kind: 'node' },
  netdev: { kind: 'netdev' },
  chardev: { kind: 'chardev' },
  iothread: { kind: 'object', qomTypes: ['iothread'] },
  memdev: { kind: 'object', qomTypes: MEMORY_BACKENDS },
  rng: { kind: 'object', qomTypes: RNG_BACKENDS },
};

/** References from objects, by `qom-type` (prefix match for `filter-`). */
function objectRefFields(qomType: string): ReadonlyArray<readonly [string, RefTarget]> {
  const fields: Array<readonly [string, RefTarget]> = [];
  if (qomType.startsWith('filter-')) fields.push(['netdev', { kind: 'netdev' }]);
  if (qomType === 'filter-mirror') fields.push(['outdev', { kind: 'chardev' }]);
  if (qomType === 'filter-redirector') {
    fields.push(['indev', { kind: 'chardev' }], ['outdev', { kind: 'chardev' }]);
  }
  if (qomType === 'rng-egd') fields.push(['chardev', { kind: 'chardev' }]);
  if (qomType === 'colo-compare') {
    fields.push(
      ['primary_in', { kind: 'chardev' }],
      ['secondary_in', { kind: 'chardev' }],
      ['outdev', { kind: 'chardev' }],
      ['iothread', { kind: 'object', qomTypes: ['iothread'] }],
    );
  }
  if (qomType === 'secret' || qomType === 'secret_keyring' || qomType.startsWith('tls-creds-'))
    fields.push(['keyid', { kind: 'object', qomTypes: SECRETS }]);
  if (qomType.startsWith('tls-creds-'))
    fields.push(['passwordid', { kind: 'object', qomTypes: SECRETS }]);
  return fields;
}

interface ChildMember {
  readonly name: string;
  readonly list: boolean;
  readonly nullable: boolean;
}

const childMemberCache = new Map<string, readonly ChildMember[]>();

/** Members of a block driver's options that name child nodes, from the schema tables. */
export function blockChildMembers(driver: string): readonly ChildMember[] {
  const cached = childMemberCache.get(driver);
  if (cached) return cached;
  const union = tables.types.BlockdevOptions;
  const variant = union?.kind === 'object' ? union.variants?.[driver] : undefined;
  const branch = variant === undefined ? undefined : tables.types[variant];
  const members: ChildMember[] = [];
  if (branch?.kind === 'object') {
    for (const m of branch.members) {
      if (m.type === 'BlockdevRef') members.push({ name: m.name, list: false, nullable: false });
      else if (m.type === 'BlockdevRefOrNull')
        members.push({ name: m.name, list: false, nullable: true });
      else if (m.type === '[BlockdevRef]')
        members.push({ name: m.name, list: true, nullable: false });
    }
  }
  childMemberCache.set(driver, members);
  return members;
}

function roleOf(member: string): EdgeRole {
  return member === 'file' || member === 'backing' || member === 'data-file' ? member : 'child';
}

export interface ReferenceScan {
  readonly references: readonly Reference[];
  readonly inline: readonly InlineChild[];
}

function scalarsOf(
  record: Record<string, unknown>,
  skip: readonly string[] = [],
): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const [key, value] of Object.entries(record)) {
    if (skip.includes(key)) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      out[key] = value;
  }
  return out;
}

function stringAt(record: Record<string, unknown>, key: string): string | undefined {
  const v = record[key];
  return typeof v === 'string' ? v : undefined;
}

/** Every reference of the configuration, in item order. */
export function scanReferences(
  config: VmConfig,
  items: readonly Item[] = collectItems(config),
): ReferenceScan {
  const references: Reference[] = [];
  const inline: InlineChild[] = [];
  const add = (
    from: Item | undefined,
    field: string,
    path: string,
    target: RefTarget,
    name: unknown,
    role?: EdgeRole,
  ) => {
    if (typeof name !== 'string') return;
    references.push(
      role === undefined
        ? { from, field, path, target, name }
        : { from, field, path, target, name, role },
    );
  };

  const machine = asRecord(config.machine);
  for (const slot of ['pflash0', 'pflash1'] as const)
    add(undefined, slot, `$.machine.${slot}`, { kind: 'node' }, machine[slot]);
  add(
    undefined,
    'memory-backend',
    '$.machine.memory-backend',
    { kind: 'object', qomTypes: MEMORY_BACKENDS },
    machine['memory-backend'],
  );

  for (const item of items) {
    const v = asRecord(item.value);
    switch (item.kind) {
      case 'node': {
        const driver = stringAt(v, 'driver') ?? '';
        for (const member of blockChildMembers(driver)) {
          const value = v[member.name];
          const values: Array<readonly [string, unknown]> =
            member.list && Array.isArray(value)
              ? value.map((x, i) => [`${member.name}[${i}]`, x] as const)
              : [[member.name, value]];
          for (const [field, child] of values) {
            if (typeof child === 'string')
              add(
                item,
                field,
                `${item.path}.${field}`,
                { kind: 'node' },
                child,
                roleOf(member.name),
              );
            else if (typeof child === 'object' && child !== null)
              inline.push({ from: item, field, path: `${item.path}.${field}` });
          }
        }
        if (driver === 'throttle')
          add(
            item,
            'throttle-group',
            `${item.path}.throttle-group`,
            { kind: 'object', qomTypes: ['throttle-group'] },
            v['throttle-group'],
          );
        if (driver === 'luks')
          add(
            item,
            'key-secret',
            `${item.path}.key-secret`,
            { kind: 'object', qomTypes: SECRETS },
            v['key-secret'],
          );
        const encrypt = asRecord(v.encrypt);
        add(
          item,
          'encrypt.key-secret',
          `${item.path}.encrypt.key-secret`,
          { kind: 'object', qomTypes: SECRETS },
          encrypt['key-secret'],
        );
        break;
      }
      case 'device': {
        const driver = stringAt(v, 'driver') ?? '';
        const spec = driverSpec(driver);
        const generic = 'props' in v;
        const props = generic
          ? scalarsOf(asRecord(v.props))
          : scalarsOf(v, ['driver', 'id', 'bus']);
        const prefix = generic ? `${item.path}.props` : item.path;
        const fieldPrefix = generic ? 'props.' : '';
        for (const [key, value] of Object.entries(props)) {
          const specRef = spec?.props[key]?.ref;
          const target: RefTarget | undefined = specRef
            ? specRef.to === 'object'
              ? { kind: 'object', qomTypes: specRef.qomTypes }
              : { kind: specRef.to }
            : GENERIC_DEVICE_REFS[key];
          if (target) add(item, `${fieldPrefix}${key}`, `${prefix}.${key}`, target, value);
        }
        break;
      }
      case 'chardev': {
        const backend = asRecord(v.backend);
        const data = asRecord(backend.data);
        if (backend.type === 'socket') {
          add(
            item,
            'backend.data.tls-creds',
            `${item.path}.backend.data.tls-creds`,
            { kind: 'object', qomTypes: TLS_CREDS },
            data['tls-creds'],
          );
          add(
            item,
            'backend.data.tls-authz',
            `${item.path}.backend.data.tls-authz`,
            { kind: 'object', qomTypes: AUTHZ },
            data['tls-authz'],
          );
        }
        if (backend.type === 'mux')
          add(
            item,
            'backend.data.chardev',
            `${item.path}.backend.data.chardev`,
            { kind: 'chardev' },
            data.chardev,
          );
        break;
      }
      case 'netdev':
        if (v.type === 'vhost-user')
          add(item, 'chardev', `${item.path}.chardev`, { kind: 'chardev' }, v.chardev);
        break;
      case 'object': {
        const qomType = stringAt(v, 'qom-type') ?? '';
        for (const [field, target] of objectRefFields(qomType))
          add(item, field, `${item.path}.${field}`, target, v[field]);
        break;
      }
    }
  }
  return { references, inline };
}
