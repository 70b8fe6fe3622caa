import { MiB, type VmConfig } from '@qmpkit/devices';
import { describe, expect, it } from 'vitest';
import { checkChain, diskJob, planBackup, selectDisks } from './chain.js';
import type { BackupManifest } from './store.js';

const config: VmConfig = {
  machine: { type: 'pc' },
  memory: { size: 32 * MiB },
  blockdevs: [
    { driver: 'file', 'node-name': 'a-file', filename: 'a.qcow2' },
    { driver: 'qcow2', 'node-name': 'a', file: 'a-file' },
    { driver: 'file', 'node-name': 'b-file', filename: 'b.raw' },
    { driver: 'raw', 'node-name': 'b', file: 'b-file' },
  ],
  devices: [
    { driver: 'ide-hd', id: 'da', drive: 'a', bus: 'ide.0' },
    { driver: 'ide-hd', id: 'db', drive: 'b', bus: 'ide.1' },
  ],
};

const manifest: BackupManifest = {
  format: 'qmpkit-backup',
  version: 1,
  prefix: 'qmpkit-x',
  points: [
    {
      id: '0001',
      kind: 'full',
      checkpoint: 'qmpkit-x-0001',
      startedAt: '',
      completedAt: '',
      disks: [{ device: 'da', node: 'a', file: 'da.0001.qcow2', virtualSize: 1, copied: 1 }],
    },
  ],
};
const disk = { device: 'da', node: 'a' };
const bitmap = { name: 'qmpkit-x-0001', recording: true, busy: false, persistent: true };

describe('selectDisks', () => {
  it('takes the qcow2 disks named and refuses a raw one with the reason', () => {
    expect(selectDisks(config, ['da'])).toEqual([disk]);
    expect(() => selectDisks(config)).toThrow(
      /disk 'db' writes to a raw node 'b', and only qcow2 keeps persistent dirty bitmaps/,
    );
    expect(() => selectDisks(config, ['nope'])).toThrow(/no disk device 'nope'/);
  });
});

describe('checkChain', () => {
  it('is empty for an intact chain', () => {
    expect(checkChain(manifest, [disk], new Map([['a', [bitmap]]]))).toEqual([]);
  });
  it.each([
    ['missing', [], 'bitmap-missing'],
    ['inconsistent', [{ ...bitmap, inconsistent: true }], 'bitmap-inconsistent'],
    ['busy', [{ ...bitmap, busy: true }], 'bitmap-busy'],
    ['disabled', [{ ...bitmap, recording: false }], 'bitmap-disabled'],
  ])('names a %s bitmap', (_what, bitmaps, kind) => {
    expect(checkChain(manifest, [disk], new Map([['a', bitmaps]]))).toMatchObject([
      { kind, device: 'da', node: 'a', bitmap: 'qmpkit-x-0001' },
    ]);
  });
  it('refuses without a full and when the disks changed', () => {
    expect(checkChain(undefined, [disk], new Map())).toMatchObject([{ kind: 'no-full' }]);
    expect(
      checkChain(manifest, [disk, { device: 'dc', node: 'c' }], new Map([['a', [bitmap]]])),
    ).toMatchObject([{ kind: 'disks-changed' }, { kind: 'bitmap-missing', device: 'dc' }]);
  });
});

describe('planBackup', () => {
  const job = { ...diskJob(disk, '0002', 'dir/da.0002.qcow2'), jobId: 'j' };
  it('full: adds the checkpoint and starts sync full in one transaction', () => {
    const plan = planBackup({
      jobs: [job],
      checkpoint: 'qmpkit-x-0002',
      stale: new Map([['a', ['qmpkit-x-0001']]]),
    });
    expect(plan.actions).toEqual([
      {
        type: 'block-dirty-bitmap-add',
        data: { node: 'a', name: 'qmpkit-x-0002', persistent: true },
      },
      {
        type: 'blockdev-backup',
        data: {
          'job-id': 'j',
          'auto-dismiss': false,
          device: 'a',
          target: 'qmpkit-bk-0002-da',
          sync: 'full',
        },
      },
    ]);
    expect(plan.onSuccess).toEqual([
      { type: 'block-dirty-bitmap-remove', data: { node: 'a', name: 'qmpkit-x-0001' } },
    ]);
    expect(plan.onFailure).toEqual([
      { type: 'block-dirty-bitmap-remove', data: { node: 'a', name: 'qmpkit-x-0002' } },
    ]);
  });
  it('incremental: disables the old checkpoint before the job reads it; failure merges back', () => {
    const plan = planBackup({ jobs: [job], checkpoint: 'qmpkit-x-0002', since: 'qmpkit-x-0001' });
    expect(plan.actions.map((a) => a.type)).toEqual([
      'block-dirty-bitmap-add',
      'block-dirty-bitmap-disable',
      'blockdev-backup',
    ]);
    expect(plan.actions[2]).toMatchObject({
      data: { sync: 'bitmap', bitmap: 'qmpkit-x-0001', 'bitmap-mode': 'never' },
    });
    expect(plan.onFailure).toEqual([
      {
        type: 'block-dirty-bitmap-merge',
        data: { node: 'a', target: 'qmpkit-x-0001', bitmaps: ['qmpkit-x-0002'] },
      },
      { type: 'block-dirty-bitmap-enable', data: { node: 'a', name: 'qmpkit-x-0001' } },
      { type: 'block-dirty-bitmap-remove', data: { node: 'a', name: 'qmpkit-x-0002' } },
    ]);
  });
});
