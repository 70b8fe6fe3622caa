import type { VmConfig } from '@qmpkit/devices';
import { describe, expect, it } from 'vitest';
import { flattenCopied, planReceivedDisks } from './disk-copy.js';
import { isLiveMigrationError } from './errors.js';

const base: VmConfig = {
  machine: { type: 'pc-i440fx-7.2' },
  memory: { size: 32 * 1024 * 1024 },
};

describe('flattenCopied (the target configuration of a disk copied flat)', () => {
  it('drops the backing link and the chain nodes nothing else uses', () => {
    const config: VmConfig = {
      ...base,
      blockdevs: [
        { driver: 'file', 'node-name': 'b-file', filename: 'base.qcow2', 'read-only': true },
        { driver: 'qcow2', 'node-name': 'b', file: 'b-file', 'read-only': true },
        { driver: 'file', 'node-name': 'top-file', filename: 'top.qcow2' },
        { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'b' },
      ],
    };
    const flat = flattenCopied(config, ['top']);
    expect(flat.blockdevs).toEqual([
      { driver: 'file', 'node-name': 'top-file', filename: 'top.qcow2' },
      { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: null },
    ]);
  });

  it('keeps a base another (uncopied) node still uses, and leaves a config without chains as is', () => {
    const config: VmConfig = {
      ...base,
      blockdevs: [
        { driver: 'file', 'node-name': 'b-file', filename: 'base.qcow2', 'read-only': true },
        { driver: 'qcow2', 'node-name': 'b', file: 'b-file', 'read-only': true },
        { driver: 'file', 'node-name': 'top-file', filename: 'top.qcow2' },
        { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'b' },
        { driver: 'file', 'node-name': 'ro-file', filename: 'ro.qcow2', 'read-only': true },
        { driver: 'qcow2', 'node-name': 'ro', file: 'ro-file', backing: 'b', 'read-only': true },
      ],
    };
    const flat = flattenCopied(config, ['top']);
    expect(flat.blockdevs?.map((n) => n['node-name'])).toEqual([
      'b-file',
      'b',
      'top-file',
      'top',
      'ro-file',
      'ro',
    ]);
    expect(flat.blockdevs?.find((n) => n['node-name'] === 'ro')).toMatchObject({ backing: 'b' });
    const plain: VmConfig = {
      ...base,
      blockdevs: [
        { driver: 'file', 'node-name': 'f', filename: 'a.qcow2' },
        { driver: 'qcow2', 'node-name': 'd', file: 'f' },
      ],
    };
    expect(flattenCopied(plain, ['d'])).toBe(plain);
  });
});

describe('planReceivedDisks (the receiving side of a copy to an address)', () => {
  const config: VmConfig = {
    ...base,
    blockdevs: [
      { driver: 'file', 'node-name': 'boot-file', filename: '/src/vm/boot.qcow2' },
      { driver: 'qcow2', 'node-name': 'boot', file: 'boot-file' },
      { driver: 'file', 'node-name': 'cd-file', filename: '/src/vm/cd.iso', 'read-only': true },
      { driver: 'raw', 'node-name': 'cd', file: 'cd-file', 'read-only': true },
    ],
    devices: [
      { driver: 'ide-hd', id: 'd0', drive: 'boot', bus: 'ide.0' },
      { driver: 'ide-cd', id: 'd1', drive: 'cd', bus: 'ide.1' },
    ],
  };

  it('plans a fresh image per writable disk in diskDir and points the config at it', () => {
    const plan = planReceivedDisks(config, { boot: 4096 }, '/dst/disks');
    expect(plan.disks).toEqual([
      {
        node: 'boot',
        format: 'qcow2',
        size: 4096,
        sourceFile: '/src/vm/boot.qcow2',
        targetFile: '/dst/disks/boot.qcow2',
        exportName: 'boot',
        clientNode: 'qmpkit-mig-nbd-boot',
        jobId: 'qmpkit-mig-mirror-boot',
      },
    ]);
    expect(plan.config.blockdevs?.[0]).toEqual({
      driver: 'file',
      'node-name': 'boot-file',
      filename: '/dst/disks/boot.qcow2',
    });
    // The read-only CD stays where the configuration says.
    expect(plan.config.blockdevs?.[2]).toEqual(config.blockdevs?.[2]);
  });

  it('refuses a missing or bad size, and a size for a node that is no writable disk', () => {
    for (const sizes of [{}, { boot: 0 }, { boot: 1.5 }, { boot: 4096, cd: 4096 }]) {
      const error = (() => {
        try {
          planReceivedDisks(config, sizes, '/dst/disks');
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(isLiveMigrationError(error) && error.reason).toBe('invalid-options');
    }
  });
});
