/**
 * The same scenarios against each strategy, on QEMU 7.2 with the tiny test guest: a save
 * at counter N restores RAM, disk and the unread serial output of the save point; several
 * snapshots in a tree; load a non-latest one; delete one in the middle; list; typed errors
 * for unknown and duplicate names.
 */
import path from 'node:path';
import { readCounterFromImageFile } from '@qmpkit/testguest';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isSnapshotExistsError, isSnapshotNotFoundError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import {
  counterAtLeast,
  guestConfig,
  nextCounter,
  pauseAndRead,
  ramCounter,
  startGuest,
} from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

/** The disk counter the VM's active chain holds now (read with force-share). */
async function diskCounter(file: string): Promise<number | undefined> {
  return readCounterFromImageFile(file, { format: 'qcow2', forceShare: true });
}

function topFile(m: { config: { blockdevs?: readonly unknown[] } }, node: string): string {
  const nodes = (m.config.blockdevs ?? []) as {
    'node-name': string;
    file?: string;
    filename?: string;
  }[];
  const fmt = nodes.find((n) => n['node-name'] === node);
  const file = nodes.find((n) => n['node-name'] === fmt?.file);
  return file?.filename ?? '';
}

function activeTop(m: { config: { devices?: readonly unknown[] } }): string {
  const dev = (m.config.devices ?? []).find((d) => (d as { id: string }).id === 'boot0') as {
    drive: string;
  };
  return dev.drive;
}

describe.each<StrategyKind>(['external', 'internal-jobs', 'internal-hmp'])('%s', (kind) => {
  it('restores RAM, disk and unread serial output of the save point', async () => {
    const dir = path.join(suite.dir, `${kind}-continuity`);
    const config = await guestConfig(suite.dir, { name: `${kind}-continuity` });
    const m = suite.adopt(await startGuest(suite.dir, config));
    const snaps = await openSnapshots(m, { dir, strategy: kind });
    const consumed = await nextCounter(m);
    // Pause ourselves so the save point's counter is known exactly.
    const n = await pauseAndRead(m);
    const diskAtSave = await diskCounter(topFile(m, activeTop(m)));
    expect(diskAtSave === n || diskAtSave === n - 1).toBe(true);
    const saved = await snaps.save('a', { description: 'paused' });
    expect(saved.strategy).toBe(kind);
    expect(saved.snapshot.wasRunning).toBe(false);
    expect(saved.bytesWritten).toBeGreaterThan(100_000);
    await m.qmp.execute('cont');
    await counterAtLeast(m, n + 10);

    const loaded = await snaps.load('a');
    expect(loaded.snapshot.name).toBe('a');
    // Paused at save time → paused after the load.
    expect((await m.qmp.execute('query-status')).running).toBe(false);
    expect(await ramCounter(m)).toBe(n);
    expect(await diskCounter(topFile(m, activeTop(m)))).toBe(diskAtSave);
    await m.qmp.execute('cont');
    // What the test had not read at save time comes again, then the guest runs on.
    const first = await nextCounter(m);
    expect(first).toBe(consumed + 1);
    let last = first;
    while (last < n + 2) {
      const c = await nextCounter(m);
      expect(c).toBe(last + 1);
      last = c;
    }
  });

  it('keeps a tree: load a non-latest snapshot, delete one in the middle, list; typed errors', async () => {
    const dir = path.join(suite.dir, `${kind}-tree`);
    const config = await guestConfig(suite.dir, { name: `${kind}-tree` });
    const m = suite.adopt(await startGuest(suite.dir, config));
    const snaps = await openSnapshots(m, { dir, strategy: kind });
    const at: Record<string, number> = {};
    for (const name of ['a', 'b', 'c']) {
      at[name] = await nextCounter(m);
      const r = await snaps.save(name);
      expect(r.snapshot.wasRunning).toBe(true);
      expect(r.timings.downtimeMs).toBeGreaterThan(0);
    }
    expect((await snaps.list()).map((s) => [s.name, s.parent])).toEqual([
      ['a', null],
      ['b', 'a'],
      ['c', 'b'],
    ]);
    expect(isSnapshotExistsError(await snaps.save('b').result.catch((e: unknown) => e))).toBe(true);
    expect(isSnapshotNotFoundError(await snaps.load('nope').result.catch((e: unknown) => e))).toBe(
      true,
    );
    expect(isSnapshotNotFoundError(await snaps.delete('nope').catch((e: unknown) => e))).toBe(true);

    // Load the first (not the latest) and branch off it.
    await snaps.load('a');
    const afterA = await nextCounter(m);
    expect(afterA).toBeGreaterThan(at.a ?? 0);
    expect(afterA).toBeLessThanOrEqual((at.a ?? 0) + 3);
    await snaps.save('d');
    // Delete b, in the middle of a → b → c.
    const del = await snaps.delete('b');
    expect(del.snapshot.name).toBe('b');
    expect((await snaps.list()).map((s) => [s.name, s.parent])).toEqual([
      ['a', null],
      ['c', 'a'],
      ['d', 'a'],
    ]);
    // c still loads and continues from its save point.
    await snaps.load('c');
    const afterC = await nextCounter(m);
    expect(afterC).toBeGreaterThan(at.c ?? 0);
    expect(afterC).toBeLessThanOrEqual((at.c ?? 0) + 3);
    await snaps.load('d');
    await nextCounter(m);
    // Overwrite is explicit.
    const again = await snaps.save('c', { overwrite: true });
    expect(again.snapshot.name).toBe('c');
    expect((await snaps.list()).map((s) => s.name).sort()).toEqual(['a', 'c', 'd']);
    await snaps.load('a');
    await nextCounter(m);
  });
});
