import { readFileSync } from 'node:fs';
import path from 'node:path';
import { availability } from '@qmpkit/qapi/merged';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeQmp } from '../__tests__/helpers.js';
import { isQmpUnknownCapabilityError, QmpUnknownCapabilityError } from '../errors.js';
import { askSchema } from './capability.js';
import { SchemaIndex, type SchemaInfo } from './schema.js';
import { connect, supports, supportsFeature, supportsValue } from './versions.js';

function captured(version: string): SchemaInfo[] {
  return JSON.parse(
    readFileSync(
      path.join(import.meta.dirname, `../../../../schemas/qemu-${version}/query-qmp-schema.json`),
      'utf8',
    ),
  ) as SchemaInfo[];
}

const qemu72 = SchemaIndex.from(captured('7.2'));
const qemu62 = SchemaIndex.from(captured('6.2'));
const tables = async () => availability;

/** A QEMU newer than the bindings: 7.2 plus a command no known version has. */
const future = new SchemaIndex([
  ...qemu72.entries,
  { name: 'x-future', 'meta-type': 'command', 'arg-type': 'future-args', 'ret-type': 'any' },
  {
    name: 'future-args',
    'meta-type': 'object',
    members: [{ name: 'knob', type: 'future-enum' }],
  },
  { name: 'future-enum', 'meta-type': 'enum', values: ['warp'] },
]);

async function rejection(promise: Promise<unknown>): Promise<QmpUnknownCapabilityError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof QmpUnknownCapabilityError))
    throw new Error(`expected QmpUnknownCapabilityError, got ${String(error)}`);
  return error;
}

describe('capability questions about things no known QEMU has', () => {
  it('rejects an unknown name, naming it and the versions the bindings know', async () => {
    const error = await rejection(askSchema(qemu72, 'snapshot-sav', undefined, tables));
    expect(error).toBeInstanceOf(TypeError);
    expect(isQmpUnknownCapabilityError(error)).toBe(true);
    expect(error.kind).toBe('name');
    expect(error.capability).toBe('snapshot-sav');
    expect(error.knownVersions).toEqual(availability.versions);
    expect(error.message).toBe(
      `'snapshot-sav' is not a command or event in QEMU 4.2–10.0 (the versions these bindings know) nor in the connected QEMU`,
    );
  });

  it('answers false, without an error, for what only other known versions have', async () => {
    expect(await askSchema(qemu72, 'query-cpus', undefined, tables)).toBe(false); // 4.2–5.2
    expect(await askSchema(qemu62, 'snapshot-save', undefined, tables)).toBe(true);
    expect(await askSchema(qemu62, 'dumpdtb', undefined, tables)).toBe(false); // 7.2+
    expect(
      await askSchema(
        qemu62,
        'blockdev-add',
        { when: { driver: 'nbd' }, member: 'open-timeout' }, // 7.0+
        tables,
      ),
    ).toBe(false);
    expect(
      await askSchema(qemu72, 'blockdev-add', { member: 'driver', value: 'vvfat' }, tables),
    ).toBe(true);
  });

  it('rejects unknown arguments and values, accepts known ones absent here', async () => {
    const member = await rejection(
      askSchema(qemu72, 'blockdev-add', { member: 'discrad' }, tables),
    );
    expect([member.kind, member.capability]).toEqual(['argument', 'blockdev-add.discrad']);
    const value = await rejection(
      askSchema(qemu72, 'blockdev-add', { member: 'driver', value: 'qcow3' }, tables),
    );
    expect([value.kind, value.capability]).toEqual(['value', 'qcow3']);
    const branch = await rejection(
      askSchema(qemu72, 'blockdev-add', { when: { driver: 'qcow3' } }, tables),
    );
    expect(branch.capability).toBe('qcow3');
    // A feature the member lacks here is a plain "no".
    expect(
      await askSchema(qemu72, 'blockdev-add', { member: 'discard', feature: 'deprecated' }, tables),
    ).toBe(false);
  });

  it('never rejects what a QEMU newer than the bindings has', async () => {
    expect(await askSchema(future, 'x-future', undefined, tables)).toBe(true);
    expect(await askSchema(future, 'x-future', { member: 'knob', value: 'warp' }, tables)).toBe(
      true,
    );
    // The live schema has the member, just not that feature: no error.
    expect(
      await askSchema(future, 'x-future', { member: 'knob', feature: 'deprecated' }, tables),
    ).toBe(false);
    // ...but a value nothing knows is still an error.
    const error = await rejection(
      askSchema(future, 'x-future', { member: 'knob', value: 'worp' }, tables),
    );
    expect(error.capability).toBe('worp');
  });

  it('loads the availability data only when the live answer is "no"', async () => {
    const load = vi.fn(tables);
    expect(await askSchema(qemu72, 'snapshot-save', undefined, load)).toBe(true);
    expect(
      await askSchema(qemu72, 'blockdev-add', { member: 'driver', value: 'qcow2' }, load),
    ).toBe(true);
    expect(load).not.toHaveBeenCalled();
    expect(await askSchema(qemu72, 'query-cpus', undefined, load)).toBe(false);
    expect(load).toHaveBeenCalledOnce();
  });
});

describe('supports / supportsValue / has from untyped code', () => {
  const client = (schema: SchemaIndex) => ({ schema: async () => schema });
  // What untyped JavaScript can pass: the names are not checked at compile time.
  const untypedSupports = supports as (
    qmp: unknown,
    name: string,
    member?: string,
  ) => Promise<unknown>;
  const untypedSupportsValue = supportsValue as (qmp: unknown, key: string) => Promise<unknown>;

  it('supports rejects unknown names and arguments, resolves undefined for known ones', async () => {
    expect((await rejection(untypedSupports(client(qemu72), 'snapshot-sav'))).kind).toBe('name');
    const arg = await rejection(untypedSupports(client(qemu72), 'blockdev-add', 'nbd.open-timout'));
    expect(arg.capability).toBe('blockdev-add.nbd.open-timout');
    expect(await untypedSupports(client(qemu62), 'blockdev-add', 'nbd.open-timeout')).toBe(
      undefined,
    );
    expect(await untypedSupports(client(qemu72), 'query-cpus')).toBe(undefined);
    const c = client(qemu72);
    expect(await untypedSupports(c, 'blockdev-add', 'nbd.open-timeout')).toBe(c);
  });

  it('supportsValue rejects an unknown value, resolves undefined for a known one', async () => {
    const error = await rejection(
      untypedSupportsValue(client(qemu72), 'blockdev-add.driver=qcow3'),
    );
    expect([error.kind, error.capability]).toEqual(['value', 'qcow3']);
    const arg = await rejection(untypedSupportsValue(client(qemu72), 'blockdev-add.drive=qcow2'));
    expect(arg.capability).toBe('blockdev-add.drive');
    expect(await untypedSupportsValue(client(qemu72), 'blockdev-add.driver=vxhs')).toBe(undefined); // 4.2–5.0
  });

  const untypedSupportsFeature = supportsFeature as (
    qmp: unknown,
    subject: string,
    feature: string,
  ) => Promise<unknown>;

  it('supportsFeature answers every subject form from the live schema', async () => {
    const ask = async (version: SchemaIndex, subject: string, feature: string) => {
      const c = client(version);
      const answer = await untypedSupportsFeature(c, subject, feature);
      return answer === c ? 'yes' : answer === undefined ? 'no' : answer;
    };
    const qemu42 = SchemaIndex.from(captured('4.2'));
    // A feature younger than its command (5.0+ on a 4.2+ command).
    expect(await ask(qemu42, 'blockdev-snapshot', 'allow-write-only-overlay')).toBe('no');
    expect(await ask(qemu72, 'blockdev-snapshot', 'allow-write-only-overlay')).toBe('yes');
    expect(await ask(qemu62, 'device_add', 'json-cli')).toBe('yes');
    expect(await ask(qemu62, 'device_add', 'json-cli-hotplug')).toBe('no'); // 7.0+
    expect(await ask(qemu72, 'device_add', 'json-cli-hotplug')).toBe('yes');
    expect(await ask(qemu72, 'MEM_UNPLUG_ERROR', 'deprecated')).toBe('yes'); // an event
    expect(await ask(qemu72, 'block-commit.base', 'deprecated')).toBe('yes');
    expect(await ask(qemu42, 'block-commit.base', 'deprecated')).toBe('no'); // 5.0+
    expect(await ask(qemu72, 'blockdev-add.nbd.x-dirty-bitmap', 'unstable')).toBe('yes');
    expect(await ask(qemu72, 'blockdev-add[file]', 'dynamic-auto-read-only')).toBe('yes');
    expect(await ask(qemu72, 'object-add.qom-type=x-remote-object', 'unstable')).toBe('yes');
    expect(await ask(qemu62, 'object-add.qom-type=x-vfio-user-server', 'unstable')).toBe('no');
  });

  it('supportsFeature rejects a feature no known version has there', async () => {
    const typo = await rejection(
      untypedSupportsFeature(client(qemu72), 'blockdev-snapshot', 'allow-write-only-overlai'),
    );
    expect([typo.kind, typo.capability]).toEqual([
      'feature',
      'blockdev-snapshot/$allow-write-only-overlai',
    ]);
    expect(typo.message).toContain('is not a feature in QEMU 4.2–10.0');
    // Known features, but not of these subjects.
    expect(
      (
        await rejection(
          untypedSupportsFeature(client(qemu72), 'blockdev-add[qcow2]', 'dynamic-auto-read-only'),
        )
      ).capability,
    ).toBe('blockdev-add[qcow2]/$dynamic-auto-read-only');
    await rejection(untypedSupportsFeature(client(qemu72), 'snapshot-sav', 'unstable'));
  });

  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('has rejects unknown names over a real connection and answers known ones', async () => {
    const schema = captured('6.2');
    const server = await fakeQmp((cmd) =>
      cmd.execute === 'query-qmp-schema' ? { return: schema } : undefined,
    );
    cleanups.push(server.close);
    const qmp = await connect<'6.2' | '7.2'>(server.address);
    cleanups.push(async () => void (await qmp.close()));
    expect(await qmp.has('snapshot-save')).toBe(true);
    expect(await qmp.has('dumpdtb')).toBe(false);
    const untypedHas = qmp.has.bind(qmp) as (name: string, query?: unknown) => Promise<boolean>;
    expect((await rejection(untypedHas('snapshot-sav'))).capability).toBe('snapshot-sav');
    expect((await rejection(untypedHas('blockdev-add', { member: 'discrad' }))).kind).toBe(
      'argument',
    );
  });
});
