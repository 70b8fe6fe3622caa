import { MiB, type VmConfig } from '@qmpkit/devices';
import type { MachineQmp } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import { isSnapshotQemuError, isSnapshotUnsupportedError } from './errors.js';
import { checkName, deviceConfigHash, hmpChecked } from './vm.js';

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
