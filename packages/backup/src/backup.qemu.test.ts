/**
 * Push-mode backup against a real QEMU (the binary under test, test-support's `QEMU`) with
 * two qcow2 disks: a full backup and three
 * incrementals with known patterns written between them, every point restored with
 * `qemu-img` and compared byte for byte (SHA-256) with what the disks held at that instant;
 * the bytes each incremental copied against the bytes written; and the bad inputs (an
 * incremental with no full, a checkpoint name that exists, a disk whose bitmap is gone, a
 * target that cannot grow (a full disk), a restore into a non-empty directory) refused with typed errors and nothing lost.
 *
 * No guest runs: the patterns are written into the running VM's disks with HMP
 * `qemu-io -d diskN "write -P …"`, which goes through the device's own block backend exactly
 * like a guest write (test use only). Nothing here depends on timing.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB } from '@qmpkit/devices';
import { launch, type Machine, runQemuImg as runImg } from '@qmpkit/machine';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { backupFull, backupIncremental } from './backup.js';
import { DISK_SIZE, diskVmConfig } from './qemu.test-support.js';
import { restore } from './restore.js';
import { readManifest } from './store.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-backup-test-' });
/** The qemu-img of the binary under test, for the tests and for the code under test. */
const IMG = { qemuImg: suite.binary.img };
const runQemuImg = (args: readonly string[]) => runImg(args, IMG);
const SIZE = DISK_SIZE;
const KiB = 1024;
const CLUSTER = 64 * KiB;
const DISKS = ['disk0', 'disk1'] as const;
type DiskId = (typeof DISKS)[number];

/** The disks' content as the test wrote it, and the clusters written since the last point. */
class Disks {
  readonly bytes = new Map<DiskId, Buffer>(DISKS.map((d) => [d, Buffer.alloc(SIZE)]));
  readonly dirty = new Map<DiskId, Set<number>>(DISKS.map((d) => [d, new Set()]));
  written = 0;

  apply(disk: DiskId, pattern: number, offset: number, length: number): void {
    this.bytes.get(disk)?.fill(pattern, offset, offset + length);
    for (let c = Math.floor(offset / CLUSTER); c * CLUSTER < offset + length; c++)
      this.dirty.get(disk)?.add(c);
    this.written += length;
  }

  /** Hashes of the content now; starts a new interval of dirty clusters. */
  point(): { sha: Record<DiskId, string>; dirtyBytes: number; written: number } {
    const sha = Object.fromEntries(
      DISKS.map((d) => [d, sha256(this.bytes.get(d) ?? Buffer.alloc(0))]),
    ) as Record<DiskId, string>;
    let dirtyBytes = 0;
    for (const d of DISKS) {
      dirtyBytes += (this.dirty.get(d)?.size ?? 0) * CLUSTER;
      this.dirty.get(d)?.clear();
    }
    const written = this.written;
    this.written = 0;
    return { sha, dirtyBytes, written };
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function twoDiskVm(name: string): Promise<{ m: Machine; disks: Disks }> {
  const config = await diskVmConfig(suite.dir, DISKS, { name, img: IMG });
  const m = suite.adopt(
    await launch(config, { ...launchQemu(suite.binary), runDirParent: suite.dir }),
  );
  return { m, disks: new Disks() };
}

async function write(
  m: Machine,
  disks: Disks,
  disk: DiskId,
  pattern: number,
  offset: number,
  length: number,
): Promise<void> {
  const out = await m.qmp.hmp(
    `qemu-io -d ${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`,
  );
  // 7.2 prints qemu-io's own report on QEMU's stdout; a refused command comes back here.
  expect(out).toBe('');
  disks.apply(disk, pattern, offset, length);
}

let restores = 0;
async function restoredSha(dir: string, point: string): Promise<Record<string, string>> {
  const to = path.join(suite.dir, `restore-${++restores}`);
  const result = await restore({ ...IMG, from: dir, to, point, format: 'raw' });
  const out: Record<string, string> = {};
  for (const d of result.disks) out[d.device] = sha256(await readFile(d.file));
  return out;
}

async function bitmapNames(m: Machine, node: string): Promise<string[]> {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return (nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps'] ?? [])
    .map((b) => `${b.name}:${b.recording ? 'on' : 'off'}`)
    .sort();
}

async function noLeftovers(m: Machine): Promise<void> {
  expect(await m.qmp.execute('query-jobs')).toEqual([]);
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  expect(nodes.map((n) => n['node-name']).filter((n) => n?.startsWith('qmpkit-bk-'))).toEqual([]);
}

describe('push-mode backup', () => {
  it('a full and 3 incrementals of two disks restore to exactly the content at each point', async () => {
    const { m, disks } = await twoDiskVm('chain');
    const dir = path.join(suite.dir, 'chain-backup');
    const expected: { id: string; sha: Record<DiskId, string> }[] = [];
    const ratios: string[] = [];

    await write(m, disks, 'disk0', 0x11, 0, 1 * MiB);
    await write(m, disks, 'disk1', 0x21, 512 * KiB, 1 * MiB);
    const full = await backupFull(m, { ...IMG, dir });
    expect(full.point).toMatchObject({ id: '0001', kind: 'full' });
    expect(full.point.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', SIZE],
      ['disk1', SIZE],
    ]);
    expected.push({ id: full.point.id, sha: disks.point().sha });
    await noLeftovers(m);

    const rounds: [DiskId, number, number, number][][] = [
      [
        ['disk0', 0x12, 64 * KiB, 64 * KiB],
        ['disk1', 0x22, 2 * MiB, 128 * KiB],
      ],
      // disk1 unchanged: its incremental layer copies nothing.
      [['disk0', 0x13, 1 * MiB, 256 * KiB]],
      // Less than a cluster: the whole 64 KiB cluster is copied.
      [
        ['disk0', 0x14, 3 * MiB + 32 * KiB, 8 * KiB],
        ['disk1', 0x23, 0, 64 * KiB],
      ],
    ];
    let previousCheckpoint = full.point.checkpoint;
    for (const round of rounds) {
      for (const [disk, pattern, offset, length] of round)
        await write(m, disks, disk, pattern, offset, length);
      const inc = await backupIncremental(m, { ...IMG, dir });
      const at = disks.point();
      expect(inc.point).toMatchObject({ kind: 'incremental', since: previousCheckpoint });
      const copied = inc.point.disks.reduce((sum, d) => sum + d.copied, 0);
      // The bitmap's granularity is the cluster: exactly the touched clusters are copied.
      expect(copied).toBe(at.dirtyBytes);
      ratios.push(`${inc.point.id}: copied ${copied} B for ${at.written} B written`);
      expected.push({ id: inc.point.id, sha: at.sha });
      previousCheckpoint = inc.point.checkpoint;
      // Only the newest checkpoint's bitmap stays, recording.
      for (const d of DISKS)
        expect(await bitmapNames(m, `${d}-fmt`)).toEqual([`${inc.point.checkpoint}:on`]);
      await noLeftovers(m);
    }
    console.log(`incremental copied/written: ${ratios.join('; ')}`);

    // Each incremental file is a layer over the previous point of the same disk.
    const info = await runQemuImg(['info', '--output=json', path.join(dir, 'disk1.0004.qcow2')]);
    expect(JSON.parse(info.stdout)).toMatchObject({ 'backing-filename': 'disk1.0003.qcow2' });

    for (const e of expected) expect(await restoredSha(dir, e.id)).toEqual(e.sha);
    expect((await readManifest(dir))?.points.map((p) => p.kind)).toEqual([
      'full',
      'incremental',
      'incremental',
      'incremental',
    ]);
  });

  it('bad inputs are refused with typed errors and nothing is lost', async () => {
    const { m, disks } = await twoDiskVm('bad');
    const dir = path.join(suite.dir, 'bad-backup');

    // An incremental with no full before it.
    await expect(backupIncremental(m, { ...IMG, dir })).rejects.toMatchObject({
      name: 'BackupChainError',
      problems: [{ kind: 'no-full' }],
    });
    expect(await readdir(dir)).toEqual([]);

    await write(m, disks, 'disk0', 0x31, 0, 128 * KiB);
    const full = await backupFull(m, { ...IMG, dir });
    disks.point();
    const files = (await readdir(dir)).sort();
    const manifest = await readFile(path.join(dir, 'backup.json'), 'utf8');

    // A checkpoint name that exists already.
    await expect(
      backupFull(m, { ...IMG, dir, checkpoint: full.point.checkpoint }),
    ).rejects.toMatchObject({
      name: 'CheckpointExistsError',
      checkpoint: full.point.checkpoint,
      device: 'disk0',
    });
    expect((await readdir(dir)).sort()).toEqual(files);
    expect(await readFile(path.join(dir, 'backup.json'), 'utf8')).toBe(manifest);

    // A disk whose bitmap is gone, in a two-disk incremental: refused before anything moved.
    await write(m, disks, 'disk1', 0x32, 1 * MiB, 64 * KiB);
    await m.qmp.execute('block-dirty-bitmap-remove', {
      node: 'disk1-fmt',
      name: full.point.checkpoint,
    });
    const refused = backupIncremental(m, { ...IMG, dir });
    await expect(refused).rejects.toMatchObject({
      name: 'BackupChainError',
      problems: [{ kind: 'bitmap-missing', device: 'disk1', bitmap: full.point.checkpoint }],
    });
    expect(await bitmapNames(m, 'disk0-fmt')).toEqual([`${full.point.checkpoint}:on`]);
    expect((await readdir(dir)).sort()).toEqual(files);
    expect(await readFile(path.join(dir, 'backup.json'), 'utf8')).toBe(manifest);
    await noLeftovers(m);

    // Repaired by a full backup, after which incrementals work again.
    const repaired = await backupIncremental(m, { ...IMG, dir, ifBroken: 'full' });
    expect(repaired.point.kind).toBe('full');
    expect(repaired.repaired?.map((p) => p.kind)).toEqual(['bitmap-missing']);
    const afterRepair = disks.point();
    await write(m, disks, 'disk1', 0x33, 2 * MiB, 64 * KiB);
    const inc = await backupIncremental(m, { ...IMG, dir });
    expect(inc.point).toMatchObject({ kind: 'incremental', since: repaired.point.checkpoint });
    const atInc = disks.point();
    // The old chain's bitmap went with the repair: one bitmap per disk.
    expect(await bitmapNames(m, 'disk0-fmt')).toEqual([`${inc.point.checkpoint}:on`]);
    expect(await restoredSha(dir, repaired.point.id)).toEqual(afterRepair.sha);
    expect(await restoredSha(dir, inc.point.id)).toEqual(atInc.sha);

    // A target that cannot grow, as on a full disk: QEMU's soft file-size limit lowered under the
    // first data cluster of a new qcow2 (256 KiB), so the job's first write fails (EFBIG, the
    // same failed target write as ENOSPC; QEMU ignores SIGXFSZ). Refused with a typed error;
    // the new files and checkpoint go, the points before and the chain stay.
    await write(m, disks, 'disk0', 0x34, 1 * MiB, 64 * KiB);
    const kept = (await readdir(dir)).sort();
    const keptManifest = await readFile(path.join(dir, 'backup.json'), 'utf8');
    const prlimit = (...args: string[]) =>
      promisify(execFile)('prlimit', ['--pid', String(m.pid), ...args]);
    const soft = (
      await prlimit('--fsize', '--raw', '--noheadings', '--output', 'SOFT')
    ).stdout.trim();
    const limit = (bytes: string) => prlimit(`--fsize=${bytes}:`);
    await limit(String(256 * KiB));
    const full2 = await backupFull(m, { ...IMG, dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await limit(soft);
    expect(full2).toMatchObject({
      name: 'BackupFailedError',
      kind: 'full',
      chainIntact: true,
      cleanupErrors: [],
      cause: { name: 'BlockJobError', desc: 'File too large' },
    });
    expect((await readdir(dir)).sort()).toEqual(kept);
    expect(await readFile(path.join(dir, 'backup.json'), 'utf8')).toBe(keptManifest);
    for (const d of DISKS)
      expect(await bitmapNames(m, `${d}-fmt`)).toEqual([`${inc.point.checkpoint}:on`]);
    await noLeftovers(m);
    const afterFull = await backupIncremental(m, { ...IMG, dir });
    expect(afterFull.point).toMatchObject({ kind: 'incremental', since: inc.point.checkpoint });
    expect(await restoredSha(dir, afterFull.point.id)).toEqual(disks.point().sha);

    // A restore into a non-empty directory: refused, the file there untouched.
    const busy = path.join(suite.dir, 'busy');
    await restore({ ...IMG, from: dir, to: busy, format: 'raw' });
    await writeFile(path.join(busy, 'keep.txt'), 'mine');
    await expect(restore({ ...IMG, from: dir, to: busy })).rejects.toMatchObject({
      name: 'RestoreTargetError',
      entries: ['disk0.raw', 'disk1.raw', 'keep.txt'],
    });
    expect(await readFile(path.join(busy, 'keep.txt'), 'utf8')).toBe('mine');
    await noLeftovers(m);
  });

  it('an incremental aborted while its jobs run leaves the chain as it was', async () => {
    const { m, disks } = await twoDiskVm('abort');
    const dir = path.join(suite.dir, 'abort-backup');
    await write(m, disks, 'disk0', 0x41, 0, 256 * KiB);
    const full = await backupFull(m, { ...IMG, dir });
    disks.point();
    const files = (await readdir(dir)).sort();
    await write(m, disks, 'disk0', 0x42, 1 * MiB, 64 * KiB);
    await write(m, disks, 'disk1', 0x43, 2 * MiB, 64 * KiB);

    // Aborted as soon as the jobs exist. Whether QEMU cancels them or they finish first, the
    // backup fails and the checkpoint chain is put back: same outcome either way.
    const controller = new AbortController();
    const failed = await backupIncremental(m, {
      ...IMG,
      dir,
      signal: controller.signal,
      onJobs: () => controller.abort('stop'),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ name: 'BackupFailedError', chainIntact: true, cause: 'stop' });
    expect((await readdir(dir)).sort()).toEqual(files);
    for (const d of DISKS)
      expect(await bitmapNames(m, `${d}-fmt`)).toEqual([`${full.point.checkpoint}:on`]);
    await noLeftovers(m);

    // What a backup of the same point leaves when our process dies in the middle (a target
    // node in QEMU, a file the manifest does not name) is cleared by the next one.
    const debris = path.join(dir, 'disk0.0002.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', debris, String(SIZE)]);
    await m.qmp.execute('blockdev-add', {
      driver: 'file',
      'node-name': 'qmpkit-bk-0002-disk0-file',
      filename: debris,
    });

    // The next incremental holds the writes of before and after the aborted one.
    await write(m, disks, 'disk1', 0x44, 3 * MiB, 64 * KiB);
    const inc = await backupIncremental(m, { ...IMG, dir });
    const at = disks.point();
    expect(inc.point.disks.reduce((sum, d) => sum + d.copied, 0)).toBe(at.dirtyBytes);
    expect(await restoredSha(dir, inc.point.id)).toEqual(at.sha);
    await noLeftovers(m);
  });
});
