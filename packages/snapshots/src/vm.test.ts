import { MiB, type VmConfig } from '@qmpkit/devices';
import type { MachineQmp } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import {
  isSnapshotCannotLoadError,
  isSnapshotLoadFailedError,
  isSnapshotMismatchError,
  isSnapshotQemuError,
  isSnapshotRestoreError,
  isSnapshotUnsupportedError,
  SnapshotCannotLoadError,
  SnapshotLoadFailedError,
  SnapshotMismatchError,
  SnapshotRestoreError,
  SnapshotStateFormatError,
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
      ...(id.cpus !== undefined ? { cpus: id.cpus } : {}),
      ...(id.deviceSet !== undefined ? { deviceSet: id.deviceSet } : {}),
      ...(id.qemuBinary !== undefined ? { qemuBinary: id.qemuBinary } : {}),
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

  it('reasons of the cannot-load hierarchy follow the field', () => {
    expect(mismatch(record({ machineType: 'pc-q35-7.2' })).reason).toBe('machine-type-differs');
    expect(mismatch(record({ memoryBytes: 32 * MiB })).reason).toBe('ram-differs');
    expect(mismatch(record({ configHash: 'b'.repeat(64) })).reason).toBe('device-set-differs');
    expect(isSnapshotCannotLoadError(mismatch(record({ memoryBytes: 1 })))).toBe(true);
  });

  it('names a CPU count that differs (cpus-differs) before the device set', () => {
    const here: VmIdentity = { ...identity, cpus: 1, deviceSet: ['ide-hd#boot0'] };
    const e = mismatch(
      record({ configHash: 'b'.repeat(64), cpus: 2, deviceSet: ['ide-hd#boot0'] }),
      here,
    );
    expect([e.reason, e.field, e.expected, e.actual]).toEqual([
      'cpus-differs',
      'cpus',
      '2 CPUs',
      '1 CPUs',
    ]);
  });

  it('names the devices only one side has (device-set-differs)', () => {
    const here: VmIdentity = { ...identity, cpus: 1, deviceSet: ['ide-hd#boot0', 'e1000#net0'] };
    const e = mismatch(
      record({ configHash: 'b'.repeat(64), cpus: 1, deviceSet: ['ide-hd#boot0'] }),
      here,
    );
    expect([e.reason, e.expected, e.actual]).toEqual([
      'device-set-differs',
      'devices nothing else',
      'devices e1000#net0',
    ]);
  });

  it('names both binaries when the record and the VM know them', () => {
    const e = mismatch(
      record({ memoryBytes: 1, qemuBinary: { path: '/a/qemu', version: '7.2.22' } }),
      { ...identity, qemuBinary: { path: '/b/qemu', version: '10.0.2' } },
    );
    expect([e.saved, e.loading]).toEqual([
      { path: '/a/qemu', version: '7.2.22' },
      { path: '/b/qemu', version: '10.0.2' },
    ]);
    expect(e.message).toContain(
      '[saved on QEMU 7.2.22 (/a/qemu); loading on QEMU 10.0.2 (/b/qemu)]',
    );
  });
});

describe('the cannot-load hierarchy', () => {
  it('SnapshotMismatchError and SnapshotLoadFailedError are SnapshotCannotLoadErrors', () => {
    const m = new SnapshotMismatchError('s', 'memory', '1 bytes', '2 bytes');
    const f = new SnapshotLoadFailedError({
      snapshot: 's',
      strategy: 'internal-jobs',
      command: 'snapshot-load',
      desc: 'Error -22 while loading VM state',
      qemuStderr: 'Size mismatch: pc.ram: 0x1 != 0x2: Invalid argument',
    });
    for (const e of [m, f]) {
      expect(e).toBeInstanceOf(SnapshotCannotLoadError);
      expect(isSnapshotCannotLoadError(e)).toBe(true);
    }
    expect([m.name, m.reason]).toEqual(['SnapshotMismatchError', 'ram-differs']);
    expect([f.name, f.reason, f.qemuStderr]).toEqual([
      'SnapshotLoadFailedError',
      'qemu-refused',
      'Size mismatch: pc.ram: 0x1 != 0x2: Invalid argument',
    ]);
    expect(f.message).toContain('Error -22 while loading VM state');
    expect(f.message).toContain("QEMU's stderr:\n  Size mismatch: pc.ram");
  });

  it('the tree separates refusals (nothing touched) from loads that failed after touching the VM', () => {
    const refusal = new SnapshotStateFormatError('s', '7.2.22');
    const failed = new SnapshotLoadFailedError({
      snapshot: 's',
      strategy: 'internal-jobs',
      command: 'snapshot-load',
      desc: 'x',
      qemuStderr: '',
    });
    const exited = new SnapshotRestoreError('s', 'exited', {
      exitCode: 1,
      signal: null,
      stderr: 'qemu: load of migration failed: Invalid argument',
      detail: 'the destination QEMU exited',
    });
    const late = new SnapshotRestoreError('s', 'timeout', {
      exitCode: null,
      signal: 'SIGKILL',
      stderr: '',
      detail: 'no completed incoming migration within 5 ms',
    });
    for (const e of [exited, late]) {
      expect(e).toBeInstanceOf(SnapshotLoadFailedError);
      expect(e).toBeInstanceOf(SnapshotCannotLoadError);
      expect([isSnapshotCannotLoadError(e), isSnapshotLoadFailedError(e)]).toEqual([true, true]);
      expect([isSnapshotRestoreError(e), e.touched, e.strategy]).toEqual([true, true, 'external']);
    }
    expect([exited.name, exited.outcome, exited.reason]).toEqual([
      'SnapshotRestoreError',
      'exited',
      'qemu-refused',
    ]);
    expect([late.outcome, late.reason]).toEqual(['timeout', 'load-timeout']);
    expect(exited.message).toBe(
      "restoring 's': the destination QEMU exited\nQEMU's stderr:\n  qemu: load of migration failed: Invalid argument",
    );
    expect([failed.touched, isSnapshotLoadFailedError(failed)]).toEqual([true, true]);
    expect([refusal.touched, isSnapshotLoadFailedError(refusal)]).toEqual([false, false]);
    // Over the supervisor's wire a plain object keeps the brand.
    expect(isSnapshotLoadFailedError({ ...exited, name: exited.name })).toBe(true);
  });

  it('a subclass of SnapshotMismatchError from elsewhere keeps its own name and is recognised', () => {
    class Other extends SnapshotMismatchError {
      override readonly name = 'SomeOtherRefusal';
    }
    const e = new Other('s', 'device-config', 'a', 'b', { reason: 'mapped-ram-unsupported' });
    expect([e.name, e.reason, isSnapshotCannotLoadError(e)]).toEqual([
      'SomeOtherRefusal',
      'mapped-ram-unsupported',
      true,
    ]);
  });

  it('the guard takes a plain object of another copy of the package, and refuses other errors', () => {
    expect(
      isSnapshotCannotLoadError({ name: 'X', snapshotCannotLoad: true, reason: 'not-qemu' }),
    ).toBe(true);
    expect(isSnapshotCannotLoadError(new Error('x'))).toBe(false);
  });
});
