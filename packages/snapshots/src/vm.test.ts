import { MiB, type VmConfig } from '@qmpkit/devices';
import type { MachineQmp } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import {
  isSnapshotMismatchError,
  isSnapshotQemuError,
  isSnapshotUnsupportedError,
  type SnapshotMismatchError,
} from './errors.js';
import type { SnapshotRecord } from './types.js';
import { checkIdentity, checkName, deviceConfigHash, hmpChecked, type VmIdentity } from './vm.js';

const base: VmConfig = {
  machine: { type: 'pc-i440fx-7.2' },
  memory: { size: 16 * MiB },
  blockdevs: [
    { driver: 'file', 'node-name': 'f', filename: '/x.qcow2' },
    { driver: 'qcow2', 'node-name': 'd', file: 'f' },
  ],
  devices: [{ driver: 'ide-hd', id: 'boot0', drive: 'd', bus: 'ide.0' }],
};

describe('deviceConfigHash', () => {
  it('ignores block node names and chains (overlays rename them)', () => {
    const renamed: VmConfig = {
      ...base,
      blockdevs: [
        ...(base.blockdevs ?? []),
        { driver: 'file', 'node-name': 'of', filename: '/o.qcow2' },
        { driver: 'qcow2', 'node-name': 'o', file: 'of', backing: 'd' },
      ],
      devices: [{ driver: 'ide-hd', id: 'boot0', drive: 'o', bus: 'ide.0' }],
    };
    expect(deviceConfigHash(renamed)).toBe(deviceConfigHash(base));
  });

  it('changes with the machine type, memory and devices', () => {
    const h = deviceConfigHash(base);
    expect(deviceConfigHash({ ...base, machine: { type: 'pc-i440fx-7.1' } })).not.toBe(h);
    expect(deviceConfigHash({ ...base, memory: { size: 32 * MiB } })).not.toBe(h);
    expect(
      deviceConfigHash({
        ...base,
        devices: [...(base.devices ?? []), { driver: 'isa-serial', id: 'com1', chardev: 'c' }],
      }),
    ).not.toBe(h);
  });
});

describe('hmpChecked', () => {
  const qmp = (reply: string) => ({ hmp: async () => reply }) as unknown as MachineQmp;
  it('turns an "Error:" text in a successful reply into SnapshotQemuError', async () => {
    const error = await hmpChecked(
      qmp("Error: Snapshot 'nope' does not exist in one or more devices\r\n"),
      'loadvm nope',
      { strategy: 'internal-hmp', operation: 'load' },
      1000,
    ).catch((e: unknown) => e);
    expect(isSnapshotQemuError(error) && [error.command, error.desc]).toEqual([
      'loadvm',
      "Snapshot 'nope' does not exist in one or more devices",
    ]);
  });
  it('passes other output through', async () => {
    expect(
      await hmpChecked(qmp(''), 'savevm a', { strategy: 'internal-hmp', operation: 'save' }, 1000),
    ).toBe('');
  });
});

it('checkName refuses names that would break HMP command lines or file names', () => {
  expect(() => checkName('external', 'ok-name_1.2')).not.toThrow();
  for (const bad of ['', 'a b', '../x', 'a;b', 'x'.repeat(65)]) {
    let caught: unknown;
    try {
      checkName('external', bad);
    } catch (e) {
      caught = e;
    }
    expect(isSnapshotUnsupportedError(caught)).toBe(true);
  }
});

describe('checkIdentity', () => {
  const identity: VmIdentity = {
    qemuVersion: '7.2.0',
    machineType: 'pc-i440fx-7.2',
    configHash: 'a'.repeat(64),
    memoryBytes: 16 * MiB,
  };
  const record = (over: Partial<VmIdentity> = {}): SnapshotRecord => {
    const id = { ...identity, ...over };
    return {
      name: 'snap',
      machineType: id.machineType,
      memoryBytes: id.memoryBytes,
      configHash: id.configHash,
      qemuVersion: id.qemuVersion,
    } as unknown as SnapshotRecord;
  };
  const mismatch = (r: SnapshotRecord, vm: VmIdentity = identity): SnapshotMismatchError => {
    try {
      checkIdentity(r, vm);
    } catch (e) {
      if (isSnapshotMismatchError(e)) return e;
      throw e;
    }
    throw new Error('checkIdentity accepted a mismatch');
  };

  it('accepts a snapshot of the same machine type, memory and device configuration', () => {
    expect(() => checkIdentity(record(), identity)).not.toThrow();
  });

  it('does not compare QEMU versions (a stream of the same machine type loads)', () => {
    expect(() => checkIdentity(record({ qemuVersion: '7.1.0' }), identity)).not.toThrow();
  });

  it('refuses another machine type, naming both', () => {
    const e = mismatch(record({ machineType: 'pc-q35-7.2' }));
    expect([e.snapshot, e.field, e.expected, e.actual]).toEqual([
      'snap',
      'machine-type',
      'pc-q35-7.2',
      'pc-i440fx-7.2',
    ]);
    expect(e.message).toBe(
      "snapshot 'snap' does not fit this VM: machine-type of the snapshot is pc-q35-7.2, the VM has pc-i440fx-7.2",
    );
  });

  it('refuses another memory size, in bytes', () => {
    const e = mismatch(record({ memoryBytes: 32 * MiB }));
    expect([e.field, e.expected, e.actual]).toEqual([
      'memory',
      `${32 * MiB} bytes`,
      `${16 * MiB} bytes`,
    ]);
  });

  it('refuses another device configuration, showing the hash prefixes', () => {
    const e = mismatch(record({ configHash: 'b'.repeat(64) }));
    expect([e.field, e.expected, e.actual]).toEqual([
      'device-config',
      `hash ${'b'.repeat(12)}…`,
      `hash ${'a'.repeat(12)}…`,
    ]);
  });

  it('reports the machine type first, then memory, when several fields differ', () => {
    const all = { machineType: 'pc-q35-7.2', memoryBytes: 1, configHash: 'c'.repeat(64) };
    expect(mismatch(record(all)).field).toBe('machine-type');
    const { machineType: _, ...rest } = all;
    expect(mismatch(record(rest)).field).toBe('memory');
  });
});
