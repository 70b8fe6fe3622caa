/**
 * External strategy specifics on QEMU 7.2: state files that QEMU would load without a word
 * (cut by one byte, one flipped byte) are refused before the VM is touched; a machine-type
 * mismatch is refused; a live (background-snapshot) save restores exactly the pause point;
 * deleting a layer the running VM builds on merges it live (block-stream).
 */
import { open, truncate } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { isSnapshotIntegrityError, isSnapshotMismatchError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import {
  countersIn,
  guestConfig,
  nextCounter,
  qemuSuite,
  ramCounter,
  startGuest,
} from './qemu.test-support.js';

const { tmp, started } = qemuSuite();

it('refuses a truncated or checksum-failing state file before touching the running VM', async () => {
  const config = await guestConfig(tmp.dir, { name: 'integrity' });
  const m = started.add(await startGuest(tmp.dir, config));
  const snaps = await openSnapshots(m, {
    dir: path.join(tmp.dir, 'integrity'),
    strategy: 'external',
  });
  const a = await snaps.save('a');
  const b = await snaps.save('b');
  const pid = m.pid;
  // Cut by one byte: QEMU 7.2 would load it without an error.
  await truncate(a.snapshot.stateFile?.path ?? '', (a.snapshot.stateFile?.bytes ?? 1) - 1);
  const cut = await snaps.load('a').result.catch((e: unknown) => e);
  expect(isSnapshotIntegrityError(cut) && cut.problem).toBe('size');
  // One flipped byte in the middle (RAM): same size, different SHA-256.
  const file = b.snapshot.stateFile?.path ?? '';
  const handle = await open(file, 'r+');
  const byte = Buffer.alloc(1);
  const at = Math.floor((b.snapshot.stateFile?.bytes ?? 0) / 2);
  await handle.read(byte, 0, 1, at);
  byte[0] = (byte[0] ?? 0) ^ 0xff;
  await handle.write(byte, 0, 1, at);
  await handle.close();
  const flipped = await snaps.load('b').result.catch((e: unknown) => e);
  expect(isSnapshotIntegrityError(flipped) && flipped.problem).toBe('checksum');
  // `quick` skips the hash (and would have loaded the damaged file): not used here.
  // The VM was never touched: same process, still running, still counting.
  expect(m.pid).toBe(pid);
  expect((await m.qmp.execute('query-status')).running).toBe(true);
  await nextCounter(m);
});

it('refuses a snapshot of another machine type, leaving the VM running', async () => {
  const config = await guestConfig(tmp.dir, { name: 'mismatch' });
  const m = started.add(await startGuest(tmp.dir, config));
  const snaps = await openSnapshots(m, {
    dir: path.join(tmp.dir, 'mismatch'),
    strategy: 'external',
  });
  await snaps.save('on-7.2');
  await m.restart({ ...m.config, machine: { type: 'pc-i440fx-7.1' } });
  await nextCounter(m);
  const pid = m.pid;
  const error = await snaps.load('on-7.2').result.catch((e: unknown) => e);
  expect(isSnapshotMismatchError(error)).toBe(true);
  expect(isSnapshotMismatchError(error) && [error.field, error.expected, error.actual]).toEqual([
    'machine-type',
    'pc-i440fx-7.2',
    'pc-i440fx-7.1',
  ]);
  expect(m.pid).toBe(pid);
  await nextCounter(m);
});

it('live mode: the guest runs on during the save and the restored state is exactly the pause point', async () => {
  const config = await guestConfig(tmp.dir, { name: 'live', memoryMiB: 32 });
  const m = started.add(await startGuest(tmp.dir, config));
  const snaps = await openSnapshots(m, { dir: path.join(tmp.dir, 'live'), strategy: 'external' });
  const before = await nextCounter(m);
  const saved = await snaps.save('live', { live: true });
  expect(saved.snapshot.live).toBe(true);
  // Downtime is measured (QEMU's STOP and RESUME timestamps); how long it is depends on the
  // host's load, so it is reported by the benchmark, not bounded here.
  expect(saved.timings.downtimeMs).toBeGreaterThanOrEqual(0);
  // The guest ran on by itself (QEMU resumed it).
  expect((await m.qmp.execute('query-status')).running).toBe(true);
  const after = await nextCounter(m);
  expect(after).toBeGreaterThan(before);
  // Load it paused (resume: false) to look at RAM before the guest runs again.
  await snaps.load('live', { resume: false });
  expect((await m.qmp.execute('query-status')).running).toBe(false);
  const ram = await ramCounter(m);
  // Exact by construction, whatever the host's load: the console text restored with the
  // snapshot is what the guest printed after `before` (consumed above) up to the pause, so
  // it continues `before` without a gap, and RAM holds its last counter — or one more,
  // when the pause fell between the guest's increment and its print.
  const restored = countersIn(m.consoleState().find((c) => c.chardev === 'ser0')?.unread ?? '');
  const last = restored.at(-1) ?? before;
  expect(restored).toEqual(Array.from({ length: last - before }, (_, i) => before + 1 + i));
  expect([last, last + 1]).toContain(ram);
  await m.qmp.execute('cont');
  // Reading on: the restored lines, then the first line the restored guest prints, which
  // continues them exactly (last + 1, whichever of the two RAM held).
  for (let n = before + 1; n <= last + 1; n++) expect(await nextCounter(m)).toBe(n);
});

it('deleting a layer the running VM builds on merges it live and keeps later snapshots loadable', async () => {
  const config = await guestConfig(tmp.dir, { name: 'merge' });
  const m = started.add(await startGuest(tmp.dir, config));
  const snaps = await openSnapshots(m, { dir: path.join(tmp.dir, 'merge'), strategy: 'external' });
  await snaps.save('a');
  await nextCounter(m);
  await snaps.save('b');
  const atC = await nextCounter(m);
  await snaps.save('c');
  await nextCounter(m);
  // The running chain is base ← a's overlay (b's layer) ← b's overlay (c's layer) ← active.
  const del = await snaps.delete('b');
  expect(del.merged.length).toBe(1);
  expect(del.removed.some((f) => f.endsWith('.state'))).toBe(true);
  await nextCounter(m);
  await snaps.load('c');
  const afterC = await nextCounter(m);
  expect(afterC).toBeGreaterThan(atC);
  expect(afterC).toBeLessThanOrEqual(atC + 3);
  await snaps.load('a');
  await nextCounter(m);
});
