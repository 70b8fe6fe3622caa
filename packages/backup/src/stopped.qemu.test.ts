/**
 * Backups of a stopped VM through `qemu-storage-daemon`, on the binary under test and the
 * daemon of the same release (7.2: the system's; 10.0: the cache's qemu-utils tree), in one
 * checkpoint chain with the running VM's: a full backup of the running VM, the VM stopped, an
 * incremental on the daemon (it continues the bitmap the running QEMU stored in the qcow2
 * files), the VM started again, an incremental of the running VM (it continues the bitmap the
 * daemon stored). Every point restored with `qemu-img` equals, by SHA-256, what the disks held
 * at that instant. While the daemon's backup runs, starting the VM is refused
 * (`RunDirLockedError`: the backup holds the VM's lock); a daemon backup of a running VM is
 * refused the same way before anything opens.
 *
 * No guest runs (the VM is launched paused): the patterns are written with HMP `qemu-io`
 * through the disks' own block backends, as in `backup.qemu.test.ts`. The refused start is
 * exact by construction: that backup's jobs run at 1 byte/s (they cannot finish), the start is
 * tried from `onJobs`, and the backup is then aborted (its checkpoint goes, the chain stays).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import {
  isRunDirLockedError,
  launch,
  Machine,
  readState,
  runQemuImg as runImg,
} from '@qmpkit/machine';
import { launchQemu, qemuSuite, REPO_CACHE_DIR, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { assert, describe, expect, it } from 'vitest';
import { backupFull, backupIncremental } from './backup.js';
import { isBackupFailedError } from './errors.js';
import { restore } from './restore.js';
import { backupStoppedVm } from './stopped.js';
import { readManifest } from './store.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-backup-stopped-' });
const IMG = { qemuImg: suite.binary.img };
const runQemuImg = (args: readonly string[]) => runImg(args, IMG);
const SIZE = 4 * MiB;
const KiB = 1024;
const DISKS = ['disk0', 'disk1'] as const;
type DiskId = (typeof DISKS)[number];

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function write(
  m: Machine,
  content: Map<DiskId, Buffer>,
  disk: DiskId,
  pattern: number,
  offset: number,
  length: number,
): Promise<void> {
  const out = await m.qmp.hmp(
    `qemu-io -d ${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`,
  );
  expect(out).toBe('');
  content.get(disk)?.fill(pattern, offset, offset + length);
}

const shas = (content: Map<DiskId, Buffer>) =>
  Object.fromEntries(DISKS.map((d) => [d, sha256(content.get(d) ?? Buffer.alloc(0))]));

let restores = 0;
async function restoredSha(dir: string, point: string): Promise<Record<string, string>> {
  const to = path.join(suite.dir, `restore-${++restores}`);
  const result = await restore({ ...IMG, from: dir, to, point, format: 'raw' });
  const out: Record<string, string> = {};
  for (const d of result.disks) out[d.device] = sha256(await readFile(d.file));
  return out;
}

describe(`backup of a stopped VM with qemu-storage-daemon on ${suite.binary.id}`, () => {
  it('running full, stopped incremental, running incremental: one chain, every point exact', async () => {
    const files = DISKS.map((d) => path.join(suite.dir, `${d}.qcow2`));
    for (const f of files) await runQemuImg(['create', '-q', '-f', 'qcow2', f, String(SIZE)]);
    const config: VmConfig = {
      machine: { type: 'pc-i440fx-7.2' },
      accel: [...TEST_ACCEL],
      memory: { size: 16 * MiB },
      paused: true,
      blockdevs: DISKS.flatMap((d, i) => [
        { driver: 'file' as const, 'node-name': `${d}-file`, filename: files[i] ?? '' },
        { driver: 'qcow2' as const, 'node-name': `${d}-fmt`, file: `${d}-file` },
      ]),
      devices: DISKS.map((d, i) => ({
        driver: 'ide-hd',
        id: d,
        drive: `${d}-fmt`,
        bus: `ide.${i}`,
      })),
    };
    const runDir = path.join(suite.dir, 'vm-run');
    const m = suite.adopt(await launch(config, { ...launchQemu(suite.binary), runDir }));
    const stateFile = m.stateFile ?? '';
    const dir = path.join(suite.dir, 'backups');
    const content = new Map<DiskId, Buffer>(DISKS.map((d) => [d, Buffer.alloc(SIZE)]));
    const stopped = { ...IMG, dir, stateFile, runDir, cacheDir: REPO_CACHE_DIR };
    const expected: Record<string, Record<string, string>> = {};

    // 1. Full backup of the running VM.
    await write(m, content, 'disk0', 0x11, 0, MiB);
    await write(m, content, 'disk1', 0x21, 512 * KiB, MiB);
    const full = await backupFull(m, { ...IMG, dir });
    expected[full.point.id] = shas(content);

    // A daemon backup of the running VM is refused before anything opens its images.
    const running = await backupStoppedVm({ ...stopped, kind: 'incremental' }).catch(
      (e: unknown) => e,
    );
    assert(isRunDirLockedError(running), String(running));

    // 2. Written while running (the full's bitmap records it), then stopped: QEMU stores the
    //    bitmap in the qcow2 files.
    await write(m, content, 'disk0', 0x12, 2 * MiB, 128 * KiB);
    await write(m, content, 'disk1', 0x22, 0, 64 * KiB);
    await m.stop();

    // Starting the VM while a daemon backup runs is refused; the aborted backup (a full: it
    // would start a new chain) leaves the chain as it was.
    const abort = new AbortController();
    let start: Promise<unknown> | undefined;
    const slow = await backupStoppedVm({
      ...stopped,
      kind: 'full',
      // 1 byte/s in 64 KiB chunks (no copy offload, which copies 4 MiB in one go): the jobs
      // sleep after their first chunk until the abort wakes them.
      copyOffload: false,
      speed: 1,
      signal: abort.signal,
      onJobs: () => {
        start = Machine.relaunch(stateFile, { cacheDir: REPO_CACHE_DIR }).then(
          (started) => suite.adopt(started),
          (error: unknown) => error,
        );
        void start.then(() => abort.abort(new Error('test: the start was tried')));
      },
    }).catch((e: unknown) => e);
    assert(isBackupFailedError(slow), String(slow));
    expect(slow.chainIntact).toBe(true);
    const refused = await start;
    assert(isRunDirLockedError(refused), String(refused));
    expect((await readManifest(dir))?.points.length).toBe(1);

    // 3. Incremental of the stopped VM: only what was written since the full.
    const mid = await backupStoppedVm({ ...stopped, kind: 'incremental' });
    expected[mid.point.id] = shas(content);
    expect(mid.point.kind).toBe('incremental');
    expect(mid.point.since).toBe(full.point.checkpoint);
    expect(mid.leftovers).toEqual([]);
    // The daemon of the VM's own QEMU release.
    const v = (await readState(stateFile)).runtime.qemuVersion;
    expect(mid.daemon.version.startsWith(`${v?.major}.${v?.minor}.`)).toBe(true);
    // 2 MiB..+128 KiB on disk0 and one 64 KiB cluster on disk1 (qcow2 clusters of 64 KiB).
    expect(mid.point.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', 128 * KiB],
      ['disk1', 64 * KiB],
    ]);
    expect((await readState(stateFile)).runtime.status).toBe('stopped');

    // 4. Started again: the daemon's checkpoint bitmap is there, consistent and recording.
    const again = suite.adopt(await Machine.relaunch(stateFile, { cacheDir: REPO_CACHE_DIR }));
    const nodes = await again.qmp.execute('query-named-block-nodes', { flat: true });
    for (const d of DISKS) {
      const bitmaps = nodes.find((n) => n['node-name'] === `${d}-fmt`)?.['dirty-bitmaps'] ?? [];
      expect(bitmaps.map((b) => [b.name, b.recording, b.inconsistent ?? false])).toEqual([
        [mid.point.checkpoint, true, false],
      ]);
    }
    await write(again, content, 'disk1', 0x23, 3 * MiB, 64 * KiB);
    const last = await backupIncremental(again, { ...IMG, dir });
    expected[last.point.id] = shas(content);
    expect(last.point.since).toBe(mid.point.checkpoint);
    expect(last.point.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', 0],
      ['disk1', 64 * KiB],
    ]);

    for (const [id, sha] of Object.entries(expected))
      expect(await restoredSha(dir, id), `point ${id}`).toEqual(sha);
  });
});
