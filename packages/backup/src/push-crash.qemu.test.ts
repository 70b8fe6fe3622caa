/**
 * Push-mode backups cut short, against a real QEMU (the binary under test). A job is caught
 * in flight without timing: it runs with `speed: 1` (1 byte per second), so QEMU's rate limit
 * lets its first run of dirty clusters through and then holds it for hours; it only ends when
 * cancelled or killed.
 * - Our process SIGKILLed mid-job (a child process holds the machine), QEMU lives on and is
 *   then ended cleanly: the next run repairs from the pending record (merges the interrupted
 *   checkpoint back) and the next incremental is exact by SHA-256 and copies only the
 *   clusters written since the full.
 * - QEMU SIGKILLed mid-job while our process lives: the backup fails saying the chain could
 *   not be put back; after a relaunch the next incremental refuses (the checkpoint's bitmap
 *   was never stored) and `ifBroken: 'full'` repairs.
 * - Cancelled at each phase (before anything was made, while the jobs run, once the jobs
 *   concluded but before the chain is committed): QEMU's nodes, jobs, exports and bitmaps and
 *   the backup directory (SHA-256 and mtime of every file) are as before, and the next
 *   incremental is exact.
 * Every case: the previous backups are unchanged, no node, job, export or pending record left.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { MiB } from '@qmpkit/devices';
import { launch, Machine, type Machine as MachineType } from '@qmpkit/machine';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { startCrashChild } from '../../machine/src/crash.test-support.js';
import { backupFull, backupIncremental } from './backup.js';
import { BACKUP_SCENARIOS, DISK_SIZE, diskVmConfig } from './qemu.test-support.js';
import { restore } from './restore.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-push-crash-' });
const IMG = { qemuImg: suite.binary.img };
const KiB = 1024;
const SIZE = DISK_SIZE;
const quiet = { warn: () => {} };

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A disk's content as written: `[pattern, offset, length]` applied in order. */
function content(writes: readonly (readonly [number, number, number])[]): string {
  const b = Buffer.alloc(SIZE);
  for (const [pattern, offset, length] of writes) b.fill(pattern, offset, offset + length);
  return sha256(b);
}

async function write(m: MachineType, disk: string, w: readonly [number, number, number]) {
  const [pattern, offset, length] = w;
  expect(
    await m.qmp.hmp(`qemu-io -d ${disk} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`),
  ).toBe('');
}

let restores = 0;
async function restoredSha(dir: string, point: string): Promise<Record<string, string>> {
  const to = path.join(suite.dir, `restore-${++restores}`);
  const result = await restore({ ...IMG, from: dir, to, point, format: 'raw' });
  const out: Record<string, string> = {};
  for (const d of result.disks) out[d.device] = sha256(await readFile(d.file));
  return out;
}

/** Every file of the backup directory with its SHA-256 and mtime. */
async function files(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await readdir(dir)).sort()) {
    const p = path.join(dir, f);
    out[f] = `${sha256(await readFile(p))} ${(await stat(p)).mtimeMs}`;
  }
  return out;
}

/** What a backup may leave in QEMU: nodes, jobs, exports, bitmaps of each disk. */
async function qemuState(m: MachineType) {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return {
    nodes: nodes.map((n) => n['node-name'] ?? '').sort(),
    jobs: await m.qmp.execute('query-jobs'),
    exports: await m.qmp.execute('query-block-exports'),
    bitmaps: Object.fromEntries(
      nodes
        .filter((n) => (n['dirty-bitmaps'] ?? []).length > 0)
        .map((n) => [
          n['node-name'],
          (n['dirty-bitmaps'] ?? []).map((b) => `${b.name}:${b.recording ? 'on' : 'off'}`).sort(),
        ]),
    ),
  };
}

function alive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits (bounded) for a process we signalled to exit. */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 3000 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  expect(alive(pid)).toBe(false);
}

async function vm(name: string, disks: readonly string[]): Promise<MachineType> {
  const config = await diskVmConfig(suite.dir, disks, { name, img: IMG });
  return suite.adopt(
    await launch(config, {
      ...launchQemu(suite.binary),
      runDir: path.join(suite.dir, `${name}-run`),
      logger: quiet,
    }),
  );
}

describe('push backup cut short', () => {
  it('our process killed mid-job, QEMU ended cleanly after: the next incremental repairs from the pending record and is exact', async () => {
    const dir = path.join(suite.dir, 'child');
    mkdirSync(dir, { mode: 0o700 });
    const {
      child: c,
      exit,
      stateFile,
      qemuPid,
    } = await startCrashChild(suite, dir, 'push', BACKUP_SCENARIOS);
    c.kill('SIGKILL');
    expect(await exit).toBe('SIGKILL');
    const backups = path.join(dir, 'backup');
    const full = (await files(backups))['disk0.0001.qcow2'];
    // The job was still running when our process died: its target is there, with the record.
    expect(Object.keys(await files(backups))).toEqual([
      '.backup-pending.json',
      'backup.json',
      'disk0.0001.qcow2',
      'disk0.0002.qcow2',
    ]);

    // A clean end (as at a host shutdown) cancels the job and stores the bitmaps: the previous
    // checkpoint disabled, the interrupted one recording.
    process.kill(qemuPid, 'SIGTERM');
    await gone(qemuPid);
    const m = suite.adopt(await Machine.relaunch(stateFile, { logger: quiet }));
    await write(m, 'disk0', [0x44, 2 * MiB, 64 * KiB]);

    const inc = await backupIncremental(m, { ...IMG, dir: backups });
    expect(inc.interrupted).toMatchObject({
      id: '0002',
      mode: 'push',
      kind: 'incremental',
      chain: 'merged',
      leftovers: [],
    });
    expect(inc.point).toMatchObject({ id: '0002', kind: 'incremental' });
    // The writes before the crash and after it, nothing else: 3 clusters.
    expect(inc.point.disks.map((d) => d.copied)).toEqual([3 * 64 * KiB]);
    expect(await restoredSha(backups, '0002')).toEqual({
      disk0: content([
        [0x41, 0, 256 * KiB],
        [0x42, 1 * MiB, 64 * KiB],
        [0x43, 3 * MiB, 64 * KiB],
        [0x44, 2 * MiB, 64 * KiB],
      ]),
    });
    expect(await restoredSha(backups, '0001')).toEqual({
      disk0: content([[0x41, 0, 256 * KiB]]),
    });
    const after = await files(backups);
    expect(after['disk0.0001.qcow2']).toBe(full);
    // No pending record, no other file than the two points'.
    expect(Object.keys(after).filter((f) => !f.startsWith('backup.json'))).toEqual([
      'disk0.0001.qcow2',
      'disk0.0002.qcow2',
    ]);
    expect(await qemuState(m)).toEqual({
      nodes: ['disk0-file', 'disk0-fmt'],
      jobs: [],
      exports: [],
      bitmaps: { 'disk0-fmt': [`${inc.point.checkpoint}:on`] },
    });
  }, 120_000);

  it('QEMU killed mid-job: the backup says the chain is lost; after a relaunch the incremental refuses and a full repairs', async () => {
    const m = await vm('qkill', ['disk0']);
    const backups = path.join(suite.dir, 'qkill-backup');
    const w1 = [0x51, 0, 128 * KiB] as const;
    await write(m, 'disk0', w1);
    await backupFull(m, { ...IMG, dir: backups });
    const before = await files(backups);
    await write(m, 'disk0', [0x52, 1 * MiB, 64 * KiB]);
    await write(m, 'disk0', [0x53, 3 * MiB, 64 * KiB]);
    // What a guest's fsync does: a killed QEMU loses qcow2 metadata it had not flushed.
    expect(await m.qmp.hmp('qemu-io -d disk0 "flush"')).toBe('');

    const failed = await backupIncremental(m, {
      ...IMG,
      dir: backups,
      speed: 1,
      onJobs: () => process.kill(m.pid, 'SIGKILL'),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ name: 'BackupFailedError', chainIntact: false });
    await m.exited;
    // The target file went; the previous backup is untouched.
    expect(await files(backups)).toEqual(before);

    // The run dir's lock is let go once the exit is recorded.
    const stateFile = m.stateFile ?? '';
    let again: MachineType | undefined;
    for (let i = 0; i < 500 && again === undefined; i++) {
      again = await Machine.relaunch(stateFile, { logger: quiet }).catch((e: unknown) => {
        if ((e as Error).name !== 'RunDirLockedError') throw e;
        return new Promise<undefined>((r) => setTimeout(() => r(undefined), 10));
      });
    }
    if (again === undefined) throw new Error('the run dir stayed locked');
    const r = suite.adopt(again);
    const refused = await backupIncremental(r, { ...IMG, dir: backups }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // QEMU writes a persistent bitmap into the image only when it closes it: killed, it never
    // stored the full's checkpoint (a bitmap stored by an earlier clean end would be
    // reported inconsistent instead; chain.test.ts covers that refusal).
    expect(refused).toMatchObject({
      name: 'BackupChainError',
      problems: [{ kind: 'bitmap-missing', device: 'disk0' }],
    });
    expect((refused as Error).message).toMatch(
      /disk 'disk0' \(node 'disk0-fmt'\) has no bitmap '[^']+' of checkpoint 0001.*a full backup is needed/,
    );
    expect(await files(backups)).toEqual(before);

    const repaired = await backupIncremental(r, { ...IMG, dir: backups, ifBroken: 'full' });
    expect(repaired.point).toMatchObject({ id: '0002', kind: 'full' });
    expect(repaired.repaired?.map((p) => p.kind)).toEqual(['bitmap-missing']);
    const now = content([w1, [0x52, 1 * MiB, 64 * KiB], [0x53, 3 * MiB, 64 * KiB]]);
    expect(await restoredSha(backups, '0002')).toEqual({ disk0: now });
    expect(await restoredSha(backups, '0001')).toEqual({ disk0: content([w1]) });
    expect((await files(backups))['disk0.0001.qcow2']).toBe(before['disk0.0001.qcow2']);
    expect(await qemuState(r)).toEqual({
      nodes: ['disk0-file', 'disk0-fmt'],
      jobs: [],
      exports: [],
      bitmaps: { 'disk0-fmt': [`${repaired.point.checkpoint}:on`] },
    });
  }, 120_000);

  it('cancelled at each phase: QEMU and the backup directory as before, the next incremental exact', async () => {
    const disks = ['disk0', 'disk1'];
    const m = await vm('cancel', disks);
    const backups = path.join(suite.dir, 'cancel-backup');
    const writes: Record<string, [number, number, number][]> = { disk0: [], disk1: [] };
    const put = async (disk: string, w: [number, number, number]) => {
      await write(m, disk, w);
      writes[disk]?.push(w);
    };
    await put('disk0', [0x61, 0, 256 * KiB]);
    await put('disk1', [0x71, 1 * MiB, 128 * KiB]);
    const full = await backupFull(m, { ...IMG, dir: backups });
    // Two runs per disk, so a job held by its rate limit has more to copy.
    await put('disk0', [0x62, 1 * MiB, 64 * KiB]);
    await put('disk0', [0x63, 3 * MiB, 64 * KiB]);
    await put('disk1', [0x72, 0, 64 * KiB]);
    await put('disk1', [0x73, 2 * MiB, 64 * KiB]);
    const qemuBefore = await qemuState(m);
    expect(qemuBefore.bitmaps).toEqual({
      'disk0-fmt': [`${full.point.checkpoint}:on`],
      'disk1-fmt': [`${full.point.checkpoint}:on`],
    });
    const dirBefore = await files(backups);

    const phases: Record<
      string,
      (abort: AbortController) => Parameters<typeof backupIncremental>[1]
    > = {
      // Aborted before the call: nothing is made.
      before: (c) => {
        c.abort(new Error('cancelled: before'));
        return { ...IMG, dir: backups, signal: c.signal };
      },
      // Aborted while the jobs are held by their rate limit: QEMU cancels them.
      running: (c) => ({
        ...IMG,
        dir: backups,
        speed: 1,
        signal: c.signal,
        onJobs: () => c.abort(new Error('cancelled: running')),
      }),
      // Aborted the moment the last job concluded, before the chain is committed.
      concluded: (c) => ({
        ...IMG,
        dir: backups,
        signal: c.signal,
        onJobs: (jobs) => {
          const open = new Set(jobs.map((j) => j.job.id));
          const off = m.qmp.on('JOB_STATUS_CHANGE', (e) => {
            if (e.data.status !== 'concluded') return;
            open.delete(e.data.id);
            if (open.size > 0) return;
            off();
            c.abort(new Error('cancelled: concluded'));
          });
        },
      }),
    };
    for (const [phase, options] of Object.entries(phases)) {
      const c = new AbortController();
      const failed = await backupIncremental(m, options(c)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failed, phase).toMatchObject({
        name: 'BackupFailedError',
        chainIntact: true,
        cleanupErrors: [],
        cause: { message: `cancelled: ${phase}` },
      });
      expect(await qemuState(m), phase).toEqual(qemuBefore);
      expect(await files(backups), phase).toEqual(dirBefore);
    }

    await put('disk1', [0x74, 3 * MiB, 64 * KiB]);
    const inc = await backupIncremental(m, { ...IMG, dir: backups });
    expect(inc.point).toMatchObject({ id: '0002', kind: 'incremental' });
    expect(inc.point.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', 2 * 64 * KiB],
      ['disk1', 3 * 64 * KiB],
    ]);
    expect(await restoredSha(backups, '0002')).toEqual({
      disk0: content(writes.disk0 ?? []),
      disk1: content(writes.disk1 ?? []),
    });
    expect((await files(backups))['disk0.0001.qcow2']).toBe(dirBefore['disk0.0001.qcow2']);
    expect(await qemuState(m)).toMatchObject({ jobs: [], exports: [], nodes: qemuBefore.nodes });
  }, 120_000);
});
