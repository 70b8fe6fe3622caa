/**
 * availabilityOf / describeAvailability over the merged view, checked against facts read from
 * the raw introspection captures in schemas/qemu-<ver>/ (not from the merge code under test).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { availability } from '../gen/merged/availability.generated.js';
import {
  type AvailabilityTables,
  availabilityOf,
  describeAvailability,
  featureAvailability,
} from './availability.js';

const schemas = path.resolve(import.meta.dirname, '../../../../schemas');

interface Entry {
  name: string;
  'meta-type': string;
  'arg-type'?: string;
  values?: string[];
  members?: { name: string; features?: string[] }[];
  features?: string[];
}

/** What the raw capture of `version` says about an element: absent, present, deprecated. */
function rawFact(
  version: string,
  kind: 'command' | 'argument' | 'value',
  key: string,
): 'absent' | 'present' | 'deprecated' {
  const dir = path.join(schemas, `qemu-${version}`);
  const list = JSON.parse(readFileSync(path.join(dir, 'query-qmp-schema.json'), 'utf8')) as Entry[];
  const byName = new Map(list.map((e) => [e.name, e]));
  const state = (features: string[] | undefined) =>
    features?.includes('deprecated') ? 'deprecated' : 'present';
  if (kind === 'command') {
    const e = byName.get(key);
    return e?.['meta-type'] === 'command' ? state(e.features) : 'absent';
  }
  const [owner, member] = key.split('.') as [string, string];
  if (kind === 'argument') {
    const command = byName.get(owner);
    const args = command?.['arg-type'] ? byName.get(command['arg-type']) : undefined;
    const m = args?.members?.find((x) => x.name === member);
    return m ? state(m.features) : 'absent';
  }
  // Enum names are masked in captures; names.json maps them back.
  const names = JSON.parse(readFileSync(path.join(dir, 'names.json'), 'utf8')) as {
    types: Record<string, string>;
  };
  const masked = Object.entries(names.types).find(([, real]) => real === owner)?.[0];
  const e = masked === undefined ? undefined : byName.get(masked);
  if (!e?.values?.includes(member)) return 'absent';
  return state(e.members?.find((x) => x.name === member)?.features);
}

function fromRaw(kind: 'command' | 'argument' | 'value', key: string) {
  const facts = availability.versions.map((v) => [v, rawFact(v, kind, key)] as const);
  return {
    versions: facts.filter(([, f]) => f !== 'absent').map(([v]) => v),
    deprecated: facts.filter(([, f]) => f === 'deprecated').map(([v]) => v),
  };
}

/** `name/$feature` of every command and event in the raw capture of `version`. */
function rawNameFeatures(version: string): Set<string> {
  const file = path.join(schemas, `qemu-${version}`, 'query-qmp-schema.json');
  const out = new Set<string>();
  for (const e of JSON.parse(readFileSync(file, 'utf8')) as Entry[]) {
    if (e['meta-type'] !== 'command' && e['meta-type'] !== 'event') continue;
    for (const feature of e.features ?? []) out.add(`${e.name}/$${feature}`);
  }
  return out;
}

describe('featureAvailability (merged view)', () => {
  it('command and event features match the raw captures in every version', () => {
    const raw = new Map(availability.versions.map((v) => [v, rawNameFeatures(v)]));
    const keys = new Set([...raw.values()].flatMap((set) => [...set]));
    expect(keys.size).toBeGreaterThan(30);
    for (const key of keys) {
      const slash = key.indexOf('/$');
      const expected = availability.versions.filter((v) => raw.get(v)!.has(key));
      expect([
        key,
        featureAvailability(availability, key.slice(0, slash), key.slice(slash + 2)),
      ]).toEqual([key, expected]);
    }
  });

  it('features younger than their command: blockdev-snapshot, device_add', () => {
    expect(availabilityOf(availability, 'commands', 'blockdev-snapshot')?.since).toBe('4.2');
    expect(
      featureAvailability(availability, 'blockdev-snapshot', 'allow-write-only-overlay')?.[0],
    ).toBe('5.0');
    expect(featureAvailability(availability, 'device_add', 'json-cli')?.[0]).toBe('6.2');
    expect(featureAvailability(availability, 'device_add', 'json-cli-hotplug')?.[0]).toBe('7.0');
  });

  it('arguments, argument branches, argument values, type members and enum values', () => {
    expect(featureAvailability(availability, 'block-commit.base', 'deprecated')).toEqual(
      fromRaw('argument', 'block-commit.base').deprecated,
    );
    expect(
      featureAvailability(availability, 'blockdev-add.nbd.x-dirty-bitmap', 'unstable')?.[0],
    ).toBe('6.2');
    expect(
      featureAvailability(availability, 'blockdev-add[file]', 'dynamic-auto-read-only'),
    ).toEqual(availability.versions);
    expect(
      featureAvailability(availability, 'object-add.qom-type=x-remote-object', 'unstable'),
    ).toEqual(['6.2', '7.0', '7.1', '7.2', '10.0']);
    expect(featureAvailability(availability, 'MigrationCapability.x-colo', 'unstable')?.[0]).toBe(
      '6.2',
    );
    expect(
      featureAvailability(availability, 'BlockdevOptionsFile', 'dynamic-auto-read-only'),
    ).toEqual(availability.versions);
  });

  it('answers undefined for a feature no version has, and for tables without features', () => {
    expect(featureAvailability(availability, 'blockdev-snapshot', 'allow-write-only-overlai')).toBe(
      undefined,
    );
    expect(featureAvailability(availability, 'query-status', 'deprecated')).toBeUndefined();
    const { features: _, ...old } = availability;
    expect(featureAvailability(old, 'blockdev-snapshot', 'allow-write-only-overlay')).toBe(
      undefined,
    );
  });
});

describe('availabilityOf / describeAvailability (merged view)', () => {
  it('covers 4.2 to 10.0, oldest first', () => {
    expect(availability.versions[0]).toBe('4.2');
    expect(availability.versions.at(-1)).toBe('10.0');
  });

  it('snapshot-save: since 6.0, still there, never deprecated', () => {
    const found = availabilityOf(availability, 'commands', 'snapshot-save');
    expect(found).toEqual({
      versions: ['6.0', '6.1', '6.2', '7.0', '7.1', '7.2', '10.0'],
      since: '6.0',
      deprecated: [],
    });
    expect(found).toMatchObject(fromRaw('command', 'snapshot-save'));
    expect(describeAvailability(availability, 'commands', 'snapshot-save')).toBe('6.0+');
  });

  it('query-cpus: 4.2 until 5.2, deprecated from 5.0', () => {
    const found = availabilityOf(availability, 'commands', 'query-cpus');
    expect(found).toEqual({
      versions: ['4.2', '5.0', '5.1', '5.2'],
      since: '4.2',
      until: '5.2',
      deprecated: ['5.0', '5.1', '5.2'],
    });
    expect(found).toMatchObject(fromRaw('command', 'query-cpus'));
    expect(describeAvailability(availability, 'commands', 'query-cpus')).toBe(
      '4.2–5.2; deprecated in 5.0',
    );
  });

  it('an enum value: BlockdevDriver.sheepdog, 4.2 until 6.0', () => {
    const found = availabilityOf(availability, 'values', 'BlockdevDriver.sheepdog');
    expect(found).toEqual({
      versions: ['4.2', '5.0', '5.1', '5.2', '6.0'],
      since: '4.2',
      until: '6.0',
      deprecated: [],
    });
    expect(found).toMatchObject(fromRaw('value', 'BlockdevDriver.sheepdog'));
    expect(describeAvailability(availability, 'values', 'BlockdevDriver.sheepdog')).toBe('4.2–6.0');
    expect(availabilityOf(availability, 'values', 'BlockdevDriver.preallocate')).toMatchObject({
      versions: ['6.0', '6.1', '6.2', '7.0', '7.1', '7.2', '10.0'],
      since: '6.0',
    });
  });

  it('arguments: eject.device (deprecated from 5.0) and blockdev-backup.x-perf (since 6.0)', () => {
    const device = availabilityOf(availability, 'arguments', 'eject.device');
    expect(device).toMatchObject({
      since: '4.2',
      deprecated: fromRaw('argument', 'eject.device').deprecated,
    });
    expect(device?.deprecated[0]).toBe('5.0');
    expect(device?.until).toBeUndefined();
    expect(describeAvailability(availability, 'arguments', 'eject.device')).toBe(
      '4.2+; deprecated in 5.0',
    );
    const perf = availabilityOf(availability, 'arguments', 'blockdev-backup.x-perf');
    expect(perf).toMatchObject(fromRaw('argument', 'blockdev-backup.x-perf'));
    expect(perf?.since).toBe('6.0');
    expect(describeAvailability(availability, 'arguments', 'blockdev-backup.x-perf')).toBe('6.0+');
  });

  it('answers undefined for what no version knows', () => {
    expect(availabilityOf(availability, 'commands', 'no-such-command')).toBeUndefined();
    expect(describeAvailability(availability, 'values', 'BlockdevDriver.nope')).toBeUndefined();
    // The kinds are separate tables: a command name is not an event.
    expect(availabilityOf(availability, 'events', 'query-status')).toBeUndefined();
  });

  it('describes gaps as separate runs', () => {
    const tables: AvailabilityTables = {
      versions: ['5.0', '6.0', '6.2', '7.0'],
      commands: { gap: 0b1101, one: 0b0010 },
      events: {},
      arguments: {},
      members: {},
      values: {},
      branches: {},
      deprecated: { gap: 0b1000 },
    };
    expect(describeAvailability(tables, 'commands', 'gap')).toBe('5.0, 6.2+; deprecated in 7.0');
    expect(describeAvailability(tables, 'commands', 'one')).toBe('6.0');
    expect(availabilityOf(tables, 'commands', 'one')).toEqual({
      versions: ['6.0'],
      since: '6.0',
      until: '6.0',
      deprecated: [],
    });
  });
});
