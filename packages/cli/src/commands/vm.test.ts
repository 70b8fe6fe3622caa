import { describe, expect, it } from 'vitest';
import type { MigrateProgressLine } from '../vm/protocol.js';
import { migrateProgress, parseDiskSize } from './vm.js';

const line = (over: Partial<MigrateProgressLine>): MigrateProgressLine => ({
  phase: 'transferring',
  bytes: 10,
  totalBytes: 100,
  percent: 10,
  elapsedMs: 5,
  remaining: 90,
  dirtyRate: 0,
  throughput: 0,
  iterations: 1,
  expectedDowntimeMs: null,
  ...over,
});

describe('vm migrate progress', () => {
  it('without disk copy: the RAM line as it is', () => {
    const p = line({});
    expect(migrateProgress(p)).toBe(p);
  });

  it('while mirroring: the disks summed, with how many are ready', () => {
    const p = line({
      phase: 'mirroring',
      bytes: 0,
      totalBytes: undefined,
      percent: undefined,
      disks: [
        { node: 'a', offset: 30, len: 100, ready: false },
        { node: 'b', offset: 50, len: 100, ready: true },
      ],
    });
    expect(migrateProgress(p)).toEqual({
      phase: 'mirroring (1/2 disks ready)',
      bytes: 80,
      totalBytes: 200,
      percent: 40,
    });
  });

  it('empty disks give no percent; after mirroring the RAM figures, the disks in the phase', () => {
    const empty = line({
      phase: 'mirroring',
      disks: [{ node: 'a', offset: 0, len: 0, ready: true }],
    });
    expect(migrateProgress(empty)).toMatchObject({
      phase: 'mirroring (1/1 disk ready)',
      totalBytes: undefined,
      percent: undefined,
    });
    const ram = line({ disks: [{ node: 'a', offset: 100, len: 100, ready: true }] });
    expect(migrateProgress(ram)).toMatchObject({
      phase: 'transferring (1/1 disk ready)',
      bytes: 10,
      totalBytes: 100,
      percent: 10,
    });
  });

  it('post-copy link broken, then recovering: the phase says so, the RAM figures stay', () => {
    expect(migrateProgress(line({ phase: 'postcopy-paused' }))).toMatchObject({
      phase: 'postcopy-paused (link broken)',
      bytes: 10,
      percent: 10,
    });
    expect(
      migrateProgress(line({ phase: 'recovering', recovery: { attempt: 1, of: 3 } })).phase,
    ).toBe('recovering (attempt 1/3)');
    const failed = line({
      phase: 'recovering',
      recovery: { attempt: 2, of: 3, lastError: 'migrate-recover on the target failed: x' },
      disks: [{ node: 'a', offset: 100, len: 100, ready: true }],
    });
    expect(migrateProgress(failed).phase).toBe(
      'recovering (attempt 2/3, last: migrate-recover on the target failed: x) (1/1 disk ready)',
    );
    expect(
      migrateProgress(line({ phase: 'postcopy-paused', recovery: { attempt: 3, of: 3 } })).phase,
    ).toBe('postcopy-paused (link broken, 3/3 recovery attempts failed)');
  });
});

describe('vm receive --disk-size NODE=SIZE', () => {
  it('reads bytes or binary suffixes and collects one entry per node', () => {
    let sizes = parseDiskSize('boot=64M', undefined);
    sizes = parseDiskSize('data=1048576', sizes);
    sizes = parseDiskSize('big=2GiB', sizes);
    expect(sizes).toEqual({ boot: 64 * 2 ** 20, data: 2 ** 20, big: 2 * 2 ** 30 });
  });

  it('refuses what is not NODE=SIZE', () => {
    for (const bad of ['boot', 'boot=', 'boot=0', 'boot=1X', '=5M'])
      expect(() => parseDiskSize(bad, undefined)).toThrow(/NODE=SIZE/);
  });
});
