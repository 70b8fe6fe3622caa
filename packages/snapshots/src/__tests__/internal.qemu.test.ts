/**
 * Internal strategy specifics on QEMU 7.2: a writable raw disk blocks HMP savevm (typed
 * error before anything runs) but not the jobs strategy, whose device list leaves it out;
 * a raw node named in `devices` is refused; a tag deleted behind qmpkit's back is reported.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { isSnapshotNotFoundError, isSnapshotUnsupportedError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

it('a writable raw disk: HMP refuses, jobs leave it out, a raw node in devices is refused', async () => {
  const raw = path.join(suite.dir, 'data.raw');
  await writeFile(raw, Buffer.alloc(1024 * 1024));
  const config = await guestConfig(suite.dir, { name: 'raw', rawDisk: raw });
  const m = suite.adopt(await startGuest(suite.dir, config));
  const snaps = await openSnapshots(m, { dir: path.join(suite.dir, 'raw') });
  // chooseStrategy explains why HMP is out.
  expect(snaps.choice?.explanation).toMatch(/internal-hmp: not possible — block node 'data'/);
  const hmp = await snaps
    .strategy('internal-hmp')
    .save('x')
    .result.catch((e: unknown) => e);
  expect(isSnapshotUnsupportedError(hmp) && hmp.reasons.join()).toMatch(/'data' \(raw\)/);
  const jobs = snaps.strategy('internal-jobs');
  const bad = await jobs.save('x', { devices: ['disk0', 'data'] }).result.catch((e: unknown) => e);
  expect(isSnapshotUnsupportedError(bad) && bad.reasons.join()).toMatch(
    /'data' \(raw\) is writable but cannot hold internal snapshots/,
  );
  const at = await nextCounter(m);
  const ok = await jobs.save('x');
  expect(ok.bytesWritten).toBeGreaterThan(0);
  await nextCounter(m);
  await jobs.load('x');
  const after = await nextCounter(m);
  expect(after).toBeGreaterThan(at);
  expect(after).toBeLessThanOrEqual(at + 3);
  // A tag removed behind our back is reported, not silently "loaded".
  const tag = (await jobs.list())[0]?.tag ?? '';
  // (HMP delvm would refuse here because of the raw disk: its text says so, QMP says ok.)
  expect(await m.qmp.hmp(`delvm ${tag}`)).toMatch(
    /^Error: Device 'data' is writable but does not support snapshots/,
  );
  await m.qmp.runJob('snapshot-delete', { tag, devices: ['disk0'] });
  const gone = await jobs.load('x').result.catch((e: unknown) => e);
  expect(isSnapshotNotFoundError(gone) && gone.message).toMatch(/missing from the disk image/);
});
