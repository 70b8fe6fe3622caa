/**
 * Disk-only external snapshots on the boot-sector test guest (it has no agent): the
 * crash-consistent path, `requireQuiesce`, the freeze → switch → thaw order through an
 * injected hook, a failing and a held overlay step (thawed either way, nothing recorded,
 * the VM still on its old chain), and the load as a cold boot from the frozen disk.
 * The Linux guest with a real agent is in `disk-only-linux.qemu.test.ts`.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { deviceProps, layerFile } from '@qmpkit/devices';
import type { Machine } from '@qmpkit/machine';
import { readCounterFromImageFile } from '@qmpkit/testguest';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import type { QuiesceHook } from '../types.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-disk-only-' });

/** The file under the boot disk's active layer. */
function activeFile(m: Machine): string {
  const boot = (m.config.devices ?? []).find((d) => d.id === 'boot0');
  const drive = boot === undefined ? undefined : deviceProps(boot).drive;
  return typeof drive === 'string' ? (layerFile(m.config, drive)?.filename ?? '') : '';
}

function recordingHook(): { hook: QuiesceHook; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    hook: {
      freeze: async () => {
        calls.push('freeze');
        return 1;
      },
      thaw: async () => {
        calls.push('thaw');
        return 1;
      },
    },
  };
}

let m: Machine;
let snaps: Snapshots;
const stops: number[] = [];

it('no agent: requireQuiesce refuses and leaves nothing; otherwise a crash-consistent snapshot while the guest runs on', async () => {
  const config = await guestConfig(suite.dir, { name: 'disk-only' });
  m = suite.adopt(await startGuest(suite.dir, config));
  m.qmp.on('STOP', () => stops.push(Date.now()));
  const dir = path.join(suite.dir, 'store');
  snaps = await openSnapshots(m, { dir, strategy: 'external' });
  const base = activeFile(m);

  const refused = await snaps
    .save('strict', { diskOnly: true, requireQuiesce: true })
    .result.catch((e: unknown) => e);
  expect(refused).toMatchObject({ name: 'SnapshotQuiesceError', reason: 'no-agent' });
  expect(snaps.store.manifest).toMatchObject({ snapshots: [], pending: [] });
  expect(await readdir(snaps.store.layersDir)).toEqual([]);
  expect(activeFile(m)).toBe(base);

  const seen = await nextCounter(m);
  const pid = m.pid;
  const saved = await snaps.save('d1', { diskOnly: true });
  expect(saved.snapshot).toMatchObject({
    diskOnly: true,
    consistency: 'crash',
    stateFile: undefined,
    vmStateBytes: 0,
    live: false,
    layers: [base],
  });
  expect(saved.bytesWritten).toBe(0);
  // The guest never paused and the process is the same; writes go to the new overlay now.
  expect(stops).toEqual([]);
  expect(m.pid).toBe(pid);
  expect(activeFile(m)).not.toBe(base);
  const frozenAt = await readCounterFromImageFile(base, { format: 'qcow2', forceShare: true });
  expect(frozenAt).toBeGreaterThanOrEqual(seen);
  const later = await nextCounter(m);
  expect(later).toBeGreaterThan(seen);
  await nextCounter(m);
  // The frozen layer no longer changes.
  expect(await readCounterFromImageFile(base, { format: 'qcow2', forceShare: true })).toBe(
    frozenAt,
  );
});

it('with a quiesce hook: freeze → switch → thaw, filesystem-consistent', async () => {
  const { hook, calls } = recordingHook();
  const before = activeFile(m);
  const saved = await snaps.save('d2', {
    diskOnly: true,
    quiesce: hook,
    onFrozen: () => {
      calls.push(`switch from ${path.basename(activeFile(m))}`);
    },
  });
  expect(calls).toEqual(['freeze', `switch from ${path.basename(before)}`, 'thaw']);
  expect(saved.snapshot).toMatchObject({ consistency: 'filesystem', layers: [before] });
  expect(saved.timings.phases).toHaveProperty('freeze');
  expect(saved.timings.phases).toHaveProperty('thaw');
  expect(activeFile(m)).not.toBe(before);
  expect(stops).toEqual([]);
});

it('a failing or held overlay step: thawed, nothing recorded, the VM still on its chain', async () => {
  const names = () => snaps.store.snapshots().map((s) => s.name);
  const before = activeFile(m);
  const files = await readdir(snaps.store.layersDir);

  const failing = recordingHook();
  const failed = await snaps
    .save('fails', {
      diskOnly: true,
      quiesce: failing.hook,
      onFrozen: () => {
        throw new Error('injected failure in the overlay step');
      },
    })
    .result.catch((e: unknown) => e);
  expect((failed as Error).message).toBe('injected failure in the overlay step');
  expect(failing.calls).toEqual(['freeze', 'thaw']);

  const held = recordingHook();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const timedOut = await snaps
    .save('held', {
      diskOnly: true,
      quiesce: held.hook,
      quiesceTimeout: 50,
      // Opened only after the save has failed: the deadline passes first by construction.
      onFrozen: () => gate,
    })
    .result.catch((e: unknown) => e);
  expect(timedOut).toMatchObject({
    name: 'SnapshotQuiesceError',
    reason: 'timeout',
    timeoutMs: 50,
    thawed: true,
  });
  expect(held.calls).toEqual(['freeze', 'thaw']);
  release();

  expect(names()).toEqual(['d1', 'd2']);
  expect(snaps.store.manifest.pending).toEqual([]);
  expect(activeFile(m)).toBe(before);
  expect(await readdir(snaps.store.layersDir)).toEqual(files);
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  expect(nodes.map((n) => n['node-name']).filter((n) => n?.startsWith('qs'))).toHaveLength(
    // d1's and d2's overlays (format + file node each), no node of the failed saves.
    4,
  );
  await nextCounter(m);
});

it('load: a cold boot from the frozen disk (the RAM counter starts again)', async () => {
  const pid = m.pid;
  const loaded = await snaps.load('d1');
  expect(loaded).toMatchObject({ bytesRead: 0, verified: undefined });
  expect(m.pid).not.toBe(pid);
  // The boot sector zeroes its RAM counter: 1 is the first line of a fresh boot.
  expect(await nextCounter(m)).toBe(1);
  expect(snaps.store.manifest.current).toBe(snaps.store.find('d1')?.id);
  // The snapshot's layer is untouched by the new run (it writes to a fresh overlay).
  expect(activeFile(m)).not.toBe(snaps.store.find('d1')?.layers[0]);
});

it('delete: a disk-only snapshot goes like any external one (no state file to remove)', async () => {
  const d2 = snaps.store.find('d2');
  const result = await snaps.delete('d2');
  // d2 froze the layer d1's save had put on top; after the load of d1 only d2 used it.
  expect(result.removed).toEqual([d2?.layers[0]]);
  expect(existsSync(d2?.layers[0] ?? '')).toBe(false);
  expect(snaps.store.snapshots().map((s) => s.name)).toEqual(['d1']);
  expect(d2?.stateFile).toBeUndefined();
  // d1 still loads after the delete (its layer was not d2's to remove).
  await snaps.load('d1');
  expect(await nextCounter(m)).toBe(1);
});
