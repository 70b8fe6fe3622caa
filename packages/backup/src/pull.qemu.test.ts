/**
 * Pull-mode backup against the QEMU under test (7.2 and 10.0): two qcow2 disks, a full and
 * two incrementals read over NBD, each point restored with `qemu-img` and compared by SHA-256
 * with what the disks held at the backup's instant; the bytes the reader took from QEMU
 * against the dirty clusters; guest writes while the export is open (the point-in-time
 * property); a socket path that exists; an abort mid-read; QEMU killed at seeded moments.
 *
 * Writes go into the running VM's disks with HMP `qemu-io -d diskN`, which passes through the
 * device's block backend like a guest write. Nothing depends on timing: the writes during an
 * export happen in the backup's own `onPhase` callback, which the backup awaits.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MiB } from '@qmpkit/devices';
import { launch, type Machine, runQemuImg } from '@qmpkit/machine';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { pullBackupFull, pullBackupIncremental } from './pull.js';
import { DISK_SIZE, diskImage, diskVmConfig } from './qemu.test-support.js';
import { restore } from './restore.js';
import { readManifest } from './store.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-pull-test-' });
const SIZE = DISK_SIZE;
const KiB = 1024;
const CLUSTER = 64 * KiB;
const DISKS = ['disk0', 'disk1'] as const;
type DiskId = (typeof DISKS)[number];

/** The disks' content as the test wrote it, and the clusters written since the last point. */
class Disks {
  readonly bytes = new Map<DiskId, Buffer>(DISKS.map((d) => [d, Buffer.alloc(SIZE)]));
  readonly dirty = new Map<DiskId, Set<number>>(DISKS.map((d) => [d, new Set()]));

  apply(disk: DiskId, pattern: number, offset: number, length: number): void {
    this.bytes.get(disk)?.fill(pattern, offset, offset + length);
    for (let c = Math.floor(offset / CLUSTER); c * CLUSTER < offset + length; c++)
      this.dirty.get(disk)?.add(c);
  }

  /** Hashes of the content now, and the dirty bytes per disk; starts a new interval. */
  point(): { sha: Record<DiskId, string>; dirty: Record<DiskId, number> } {
    const sha = {} as Record<DiskId, string>;
    const dirty = {} as Record<DiskId, number>;
    for (const d of DISKS) {
      sha[d] = sha256(this.bytes.get(d) ?? Buffer.alloc(0));
      dirty[d] = (this.dirty.get(d)?.size ?? 0) * CLUSTER;
      this.dirty.get(d)?.clear();
    }
    return { sha, dirty };
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function _diskFiles(name: string): string[] {
  return DISKS.map((d) => diskImage(suite.dir, d, name));
}

async function startVm(name: string, create: boolean): Promise<Machine> {
  const config = await diskVmConfig(suite.dir, DISKS, { name, create });
  return suite.adopt(await launch(config, { ...launchQemu(), runDirParent: suite.dir }));
}

async function write(
  m: Machine,
  disks: Disks | undefined,
  disk: DiskId,
  pattern: number,
  offset: number,
  length: number,
): Promise<void> {
  const out = await m.qmp.hmp(
    `qemu-io -d ${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`,
  );
  // qemu-io's report goes to QEMU's stdout (7.2) or comes back here; a failure names itself.
  expect(out).not.toMatch(/error|fail|cannot|not found/i);
  disks?.apply(disk, pattern, offset, length);
}

let restores = 0;
async function restoredSha(dir: string, point: string): Promise<Record<string, string>> {
  const to = path.join(suite.dir, `restore-${++restores}`);
  const result = await restore({ from: dir, to, point, format: 'raw' });
  const out: Record<string, string> = {};
  for (const d of result.disks) out[d.device] = sha256(await readFile(d.file));
  return out;
}

/** What a backup must leave as it found it: nodes, exports, jobs. */
async function graph(m: Machine): Promise<{ nodes: string[]; exports: string[]; jobs: string[] }> {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return {
    nodes: nodes.map((n) => n['node-name'] ?? '').sort(),
    exports: (await m.qmp.execute('query-block-exports')).map((e) => e.id).sort(),
    jobs: (await m.qmp.execute('query-jobs')).map((j) => j.id).sort(),
  };
}

async function bitmapNames(m: Machine, node: string): Promise<string[]> {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return (nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps'] ?? [])
    .map((b) => `${b.name}:${b.recording ? 'on' : 'off'}`)
    .sort();
}

describe('pull-mode backup over NBD', () => {
  it('a full and 2 incrementals of two disks restore exactly; incrementals read only dirty clusters; writes during the export are not seen', async () => {
    const m = await startVm('chain', true);
    const disks = new Disks();
    const dir = path.join(suite.dir, 'chain-backup');
    const before = await graph(m);
    const expected: { id: string; sha: Record<DiskId, string> }[] = [];

    await write(m, disks, 'disk0', 0x11, 0, 1 * MiB);
    await write(m, disks, 'disk1', 0x21, 512 * KiB, 1 * MiB);
    // While the export is open the guest overwrites data the reader has not read yet: the
    // backup must still hold the content of the backup's instant.
    const atFull = disks.point();
    const full = await pullBackupFull(m, {
      dir,
      onPhase: async (p) => {
        if (p.phase !== 'exported') return;
        expect((await graph(m)).exports).toHaveLength(2);
        await write(m, disks, 'disk0', 0x5a, 0, 192 * KiB);
        await write(m, disks, 'disk1', 0x5b, 1 * MiB, 64 * KiB);
      },
    });
    expect(full.point).toMatchObject({ id: '0001', kind: 'full' });
    // A full backup reads the allocated extents: what the test wrote before the instant.
    expect(full.bytesRead).toEqual({ disk0: 1 * MiB, disk1: 1 * MiB });
    expected.push({ id: full.point.id, sha: atFull.sha });
    expect(await graph(m)).toEqual(before);

    const rounds: [DiskId, number, number, number][][] = [
      [
        ['disk0', 0x12, 64 * KiB, 64 * KiB],
        ['disk1', 0x22, 2 * MiB, 128 * KiB],
      ],
      // disk1 unchanged since (beyond the write during the full); less than a cluster on disk0.
      [['disk0', 0x13, 3 * MiB + 32 * KiB, 8 * KiB]],
    ];
    let since = full.point.checkpoint;
    for (const round of rounds) {
      for (const [disk, pattern, offset, length] of round)
        await write(m, disks, disk, pattern, offset, length);
      const at = disks.point();
      const inc = await pullBackupIncremental(m, {
        dir,
        onPhase: async (p) => {
          // A write during the export lands in the next interval, not in this point.
          if (p.phase === 'exported') await write(m, disks, 'disk1', 0x60, 3 * MiB, 4 * KiB);
        },
      });
      expect(inc.point).toMatchObject({ kind: 'incremental', since });
      // Exactly the dirty clusters of each disk are read from QEMU.
      expect(inc.bytesRead).toEqual(at.dirty);
      expect(Object.fromEntries(inc.point.disks.map((d) => [d.device, d.copied]))).toEqual(
        at.dirty,
      );
      console.log(
        `pull ${inc.point.id}: read ${JSON.stringify(inc.bytesRead)} for dirty ${JSON.stringify(at.dirty)} (snapshot-access: ${inc.snapshotAccess})`,
      );
      expected.push({ id: inc.point.id, sha: at.sha });
      since = inc.point.checkpoint;
      for (const d of DISKS) expect(await bitmapNames(m, `${d}-fmt`)).toEqual([`${since}:on`]);
      expect(await graph(m)).toEqual(before);
    }

    const info = await runQemuImg(['info', '--output=json', path.join(dir, 'disk1.0003.qcow2')]);
    expect(JSON.parse(info.stdout)).toMatchObject({ 'backing-filename': 'disk1.0002.qcow2' });
    for (const e of expected) expect(await restoredSha(dir, e.id)).toEqual(e.sha);
    expect((await readManifest(dir))?.points.map((p) => p.kind)).toEqual([
      'full',
      'incremental',
      'incremental',
    ]);
    // Nothing of the export is left in the backup directory or the run dir.
    // (`backup.json.bak` is the manifest's previous version, kept by the atomic write.)
    expect((await readdir(dir)).filter((f) => f !== 'backup.json.bak').sort()).toEqual([
      'backup.json',
      'disk0.0001.qcow2',
      'disk0.0002.qcow2',
      'disk0.0003.qcow2',
      'disk1.0001.qcow2',
      'disk1.0002.qcow2',
      'disk1.0003.qcow2',
    ]);
    expect((await readdir(m.runDir)).filter((f) => f.includes('nbd'))).toEqual([]);
  });

  it('a taken socket path is refused; an abort mid-read leaves no nodes, exports or jobs and the chain intact', async () => {
    const m = await startVm('bad', true);
    const disks = new Disks();
    const dir = path.join(suite.dir, 'bad-backup');
    const before = await graph(m);
    await write(m, disks, 'disk0', 0x31, 0, 256 * KiB);

    const taken = path.join(suite.dir, 'taken.sock');
    await writeFile(taken, 'not a socket');
    await expect(pullBackupFull(m, { dir, socket: taken })).rejects.toMatchObject({
      name: 'PullExportError',
      reason: 'socket-exists',
      path: taken,
    });
    expect(await readFile(taken, 'utf8')).toBe('not a socket');
    expect(await graph(m)).toEqual(before);

    const full = await pullBackupFull(m, { dir });
    disks.point();
    const files = (await readdir(dir)).sort();
    const manifest = await readFile(path.join(dir, 'backup.json'), 'utf8');

    await write(m, disks, 'disk0', 0x32, 1 * MiB, 128 * KiB);
    await write(m, disks, 'disk1', 0x33, 2 * MiB, 64 * KiB);
    // Aborted once the first extent was copied, while the export is open.
    const controller = new AbortController();
    let reads = 0;
    const failed = await pullBackupIncremental(m, {
      dir,
      signal: controller.signal,
      onPhase: (p) => {
        if (p.phase === 'extent' && ++reads === 1) controller.abort('stop');
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(reads).toBe(1);
    expect(failed).toMatchObject({ name: 'BackupFailedError', chainIntact: true, cause: 'stop' });
    expect(await graph(m)).toEqual(before);
    expect((await readdir(dir)).sort()).toEqual(files);
    expect(await readFile(path.join(dir, 'backup.json'), 'utf8')).toBe(manifest);
    for (const d of DISKS)
      expect(await bitmapNames(m, `${d}-fmt`)).toEqual([`${full.point.checkpoint}:on`]);

    // The next incremental holds the writes of before and after the aborted one.
    await write(m, disks, 'disk1', 0x34, 3 * MiB, 64 * KiB);
    const at = disks.point();
    const inc = await pullBackupIncremental(m, { dir });
    expect(inc.bytesRead).toEqual(at.dirty);
    expect(await restoredSha(dir, inc.point.id)).toEqual(at.sha);
    expect(await graph(m)).toEqual(before);
  });

  // Seeded kill points: after the export is up, and after the n-th extent of the read.
  const KILLS = [
    { seed: 'exported', extent: 0 },
    { seed: 'extent-1', extent: 1 },
    { seed: 'extent-2', extent: 2 },
  ] as const;
  it.each(KILLS)(
    'QEMU killed mid-backup ($seed): the next incremental refuses with the reason, a full repairs the chain',
    async ({ seed, extent }) => {
      const name = `kill-${seed}`;
      let m = await startVm(name, true);
      const disks = new Disks();
      const dir = path.join(suite.dir, `${name}-backup`);
      await write(m, disks, 'disk0', 0x41, 0, 256 * KiB);
      const full = await pullBackupFull(m, { dir });
      disks.point();
      const files = (await readdir(dir)).sort();
      await write(m, disks, 'disk0', 0x42, 1 * MiB, 64 * KiB);
      await write(m, disks, 'disk1', 0x43, 0, 128 * KiB);
      // On disk before the crash (qcow2 metadata too), so the relaunched VM sees these writes.
      for (const d of DISKS) await m.qmp.hmp(`qemu-io -d ${d} "flush"`);

      let reads = 0;
      const killed = m;
      const failed = await pullBackupIncremental(m, {
        dir,
        onPhase: async (p) => {
          const now =
            (p.phase === 'exported' && extent === 0) ||
            (p.phase === 'extent' && ++reads === extent);
          if (now) await killed.kill();
        },
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failed).toMatchObject({ name: 'BackupFailedError', kind: 'incremental' });
      // The previous points are intact, and nothing of the failed one is kept.
      expect((await readdir(dir)).sort()).toEqual(files);
      expect((await readManifest(dir))?.points.map((p) => p.id)).toEqual([full.point.id]);

      // QEMU never closed the images: the checkpoint's bitmap is inconsistent (or gone).
      m = await startVm(name, false);
      const refused = await pullBackupIncremental(m, { dir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused).toMatchObject({ name: 'BackupChainError' });
      const kinds = (refused as { problems: { kind: string; device: string }[] }).problems;
      expect(kinds.length).toBeGreaterThan(0);
      for (const p of kinds) expect(['bitmap-inconsistent', 'bitmap-missing']).toContain(p.kind);
      expect((refused as Error).message).toMatch(/a full backup is needed/);

      // `ifBroken: 'full'` repairs: a new full, then incrementals work again.
      const repaired = await pullBackupIncremental(m, { dir, ifBroken: 'full' });
      expect(repaired.point.kind).toBe('full');
      const atRepair = disks.point();
      expect(await restoredSha(dir, repaired.point.id)).toEqual(atRepair.sha);
      await write(m, disks, 'disk1', 0x44, 2 * MiB, 64 * KiB);
      const at = disks.point();
      const inc = await pullBackupIncremental(m, { dir });
      expect(inc.bytesRead).toEqual(at.dirty);
      expect(await restoredSha(dir, inc.point.id)).toEqual(at.sha);
    },
  );
});
