/**
 * External restores that fail inside the destination QEMU, on QEMU 7.2: a state file that
 * passes every check we can make before the load (size, `QEVM` v3 header, SHA-256 fixed up
 * in the manifest) but whose stream is garbage makes the destination exit with code 1 and
 * say why only on its stderr — both end up in `SnapshotRestoreError`; and a restore that
 * does not complete within its deadline is killed (`outcome: 'timeout'`, `reason: 'load-timeout'`). In both cases the
 * machine is stopped (never a half-restored guest left running) and the next load of a good
 * snapshot brings it back.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { isSnapshotRestoreError } from '../errors.js';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import { STREAM_MAGIC, STREAM_VERSION, sha256File } from '../statefile.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Replaces `name`'s state file with `content` and records its real SHA-256 in the manifest. */
async function replaceState(snaps: Snapshots, name: string, content: Buffer): Promise<void> {
  const record = snaps.store.find(name);
  const state = record?.stateFile;
  if (record === undefined || state === undefined) throw new Error(`no state file for ${name}`);
  await writeFile(state.path, content);
  const sha256 = await sha256File(state.path);
  await snaps.store.update((m) => ({
    ...m,
    snapshots: m.snapshots.map((s) =>
      s.id === record.id && s.stateFile ? { ...s, stateFile: { ...s.stateFile, sha256 } } : s,
    ),
  }));
}

it('a stream QEMU rejects: SnapshotRestoreError with exit code 1 and its stderr, machine stopped, a good snapshot loads next', async () => {
  const config = await guestConfig(suite.dir, { name: 'garbage' });
  const m = suite.adopt(await startGuest(suite.dir, config));
  const snaps = await openSnapshots(m, {
    dir: path.join(suite.dir, 'garbage'),
    strategy: 'external',
  });
  const atGood = await nextCounter(m);
  await snaps.save('good');
  await nextCounter(m);
  const bad = await snaps.save('bad');
  await nextCounter(m);

  // Same size, a valid header, garbage after it.
  const original = await readFile(bad.snapshot.stateFile?.path ?? '');
  const garbage = Buffer.alloc(original.length, 0xa5);
  garbage.writeUInt32BE(STREAM_MAGIC, 0);
  garbage.writeUInt32BE(STREAM_VERSION, 4);
  expect(garbage.subarray(0, 8).equals(original.subarray(0, 8))).toBe(true);
  await replaceState(snaps, 'bad', garbage);

  const oldPid = m.pid;
  const error = await snaps.load('bad').result.catch((e: unknown) => e);
  expect(isSnapshotRestoreError(error)).toBe(true);
  if (!isSnapshotRestoreError(error)) return;
  expect(['failed', 'exited']).toContain(error.outcome);
  expect([error.reason, error.touched]).toEqual(['qemu-refused', true]);
  expect(error.exitCode).toBe(1);
  expect(error.signal).toBeNull();
  expect(error.stderr.trim()).not.toBe('');
  expect(error.stderr).toMatch(/load of migration failed/);
  // The stderr is in the message, for a reader who only sees the message.
  expect(error.message).toContain('load of migration failed');
  // Full verification passed: the failure came from QEMU, after the old VM was replaced.
  expect(alive(oldPid)).toBe(false);
  // Not half-restored: no QEMU runs for this machine.
  expect(m.status).not.toBe('running');
  expect(alive(m.pid)).toBe(false);

  // The store is intact and a good snapshot brings the VM back from its save point.
  expect((await snaps.list()).map((s) => s.name)).toEqual(['good', 'bad']);
  await snaps.load('good');
  expect(m.status).toBe('running');
  const next = await nextCounter(m);
  expect(next).toBeGreaterThan(atGood);
  expect(next).toBeLessThanOrEqual(atGood + 3);
});

it('a restore past its deadline: reason timeout (not the exit our kill causes), the destination QEMU is killed, a later load works', async () => {
  const config = await guestConfig(suite.dir, { name: 'deadline' });
  const m = suite.adopt(await startGuest(suite.dir, config));
  const snaps = await openSnapshots(m, {
    dir: path.join(suite.dir, 'deadline'),
    strategy: 'external',
  });
  const at = await nextCounter(m);
  await snaps.save('a');
  await nextCounter(m);

  // The destination QEMU is frozen (SIGSTOP) as soon as it exists, so the incoming migration
  // cannot complete however fast the machine is: only the deadline can end the load.
  let destination: number | undefined;
  const error = await snaps
    .load('a', {
      timeout: 3000,
      onProgress: (p) => {
        if (p.phase !== 'load' || destination !== undefined) return;
        destination = m.pid;
        process.kill(destination, 'SIGSTOP');
      },
    })
    .result.catch((e: unknown) => e);
  expect(destination).toBeDefined();
  expect(isSnapshotRestoreError(error)).toBe(true);
  if (!isSnapshotRestoreError(error)) return;
  expect([error.outcome, error.reason]).toEqual(['timeout', 'load-timeout']);
  expect(error.signal).toBe('SIGKILL');
  expect(error.message).toMatch(/within 3000 ms/);
  // No QEMU left behind.
  expect(alive(destination ?? 0)).toBe(false);
  expect(m.status).not.toBe('running');

  await snaps.load('a');
  const next = await nextCounter(m);
  expect(next).toBeGreaterThan(at);
  expect(next).toBeLessThanOrEqual(at + 3);
});
