import type { VmConfig } from '@qmpkit/devices';
import { describe, expect, it } from 'vitest';
import { flattenCopied } from './disk-copy.js';

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
