/**
 * Our own process killed in the middle of a pull backup (a real SIGKILL of a child process
 * that holds the machine, scenario `pull` of `qemu.test-support.ts`), while QEMU with the export,
 * fleecing nodes, jobs and the new checkpoint bitmap lives on. Two ways it goes on:
 * - the relaunch ends the QEMU that lived on (`Machine.relaunch` sends SIGTERM first): QEMU
 *   stores the bitmaps, the next run merges the interrupted checkpoint back, and the next
 *   incremental holds every write since the full — exact by checksum, and only the dirty
 *   clusters are read;
 * - QEMU is SIGKILLed before the relaunch (a host crash): the bitmaps were never stored, so
 *   the next incremental says why a full backup is needed, naming the interrupted backup, and
 *   `ifBroken: 'full'` repairs.
 * Both: no leftover nodes, exports, jobs, socket, scratch or pending record.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Machine, type Machine as MachineType } from '@qmpkit/machine';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { startCrashChild } from '../../machine/src/crash.test-support.js';
import { pullBackupIncremental } from './pull.js';
import { BACKUP_SCENARIOS } from './qemu.test-support.js';
import { restore } from './restore.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-pull-crash-' });
const KiB = 1024;
const MiB = 1024 * KiB;
const quiet = { warn: () => {} };

/** Starts the child, waits for its line (it is then inside the incremental), kills it. */
async function crashMidPull(dir: string): Promise<{ stateFile: string; qemuPid: number }> {
  const c = await startCrashChild(suite, dir, 'pull', BACKUP_SCENARIOS);
  c.child.kill('SIGKILL');
  expect(await c.exit).toBe('SIGKILL');
  return { stateFile: c.stateFile, qemuPid: c.qemuPid };
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits (bounded) for a process we signalled to exit. */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 3000 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  expect(alive(pid)).toBe(false);
}

/** The disk's content as the child and this test wrote it. */
function content(writes: readonly [number, number, number][]): string {
  const b = Buffer.alloc(4 * MiB);
  for (const [pattern, offset, length] of writes) b.fill(pattern, offset, offset + length);
  return createHash('sha256').update(b).digest('hex');
}

async function restoredSha(dir: string, point: string, to: string): Promise<string> {
  const result = await restore({ from: dir, to, point, format: 'raw' });
  const file = result.disks[0]?.file ?? '';
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

async function leftovers(m: MachineType, dir: string) {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return {
    nodes: nodes.map((n) => n['node-name'] ?? '').sort(),
    exports: await m.qmp.execute('query-block-exports'),
    jobs: await m.qmp.execute('query-jobs'),
    bitmaps: (nodes.find((n) => n['node-name'] === 'disk0-fmt')?.['dirty-bitmaps'] ?? []).map(
      (b) => `${b.name}:${b.recording ? 'on' : 'off'}`,
    ),
    runDir: (await readdir(m.runDir)).filter((f) => f.includes('nbd') || f.includes('backup')),
    backupDir: (await readdir(dir)).filter((f) => f.startsWith('.')).sort(),
  };
}

// What the child wrote: before the full, then between the full and the killed incremental.
const CHILD: [number, number, number][] = [
  [0x41, 0, 256 * KiB],
  [0x42, 1 * MiB, 64 * KiB],
  [0x43, 3 * MiB, 64 * KiB],
];

describe('our process killed mid-pull', () => {
  it('QEMU lived on and the relaunch ended it cleanly: the next run merges the checkpoint back and the incremental is exact', async () => {
    const dir = path.join(suite.dir, 'merge');
    mkdirSync(dir, { mode: 0o700 });
    const { stateFile, qemuPid } = await crashMidPull(dir);
    // The interrupted backup's export and fleecing nodes still exist in that QEMU. The
    // relaunch ends it with SIGTERM first: a clean end stores its bitmaps (the previous
    // checkpoint disabled, the new one recording).
    const m = suite.adopt(await Machine.relaunch(stateFile, { logger: quiet }));
    expect(alive(qemuPid)).toBe(false);
    const backups = path.join(dir, 'backup');
    await m.qmp.hmp('qemu-io -d disk0 "write -P 0x44 2M 64k"');

    const inc = await pullBackupIncremental(m, { dir: backups });
    expect(inc.interrupted).toMatchObject({ id: '0002', mode: 'pull', chain: 'merged' });
    expect(inc.point).toMatchObject({ id: '0002', kind: 'incremental' });
    // The writes before the crash and after it, nothing else: 3 clusters.
    expect(inc.bytesRead).toEqual({ disk0: 3 * 64 * KiB });
    expect(await restoredSha(backups, '0002', path.join(suite.dir, 'merge-restore'))).toBe(
      content([...CHILD, [0x44, 2 * MiB, 64 * KiB]]),
    );
    expect(await leftovers(m, backups)).toMatchObject({
      exports: [],
      jobs: [],
      bitmaps: [`${inc.point.checkpoint}:on`],
      runDir: [],
      backupDir: [],
    });
    expect((await leftovers(m, backups)).nodes).toEqual(['disk0-file', 'disk0-fmt']);
  }, 120_000);

  it('QEMU SIGKILLed after it (a host crash): the next incremental names the interrupted backup and asks for a full; a full repairs', async () => {
    const dir = path.join(suite.dir, 'drop');
    mkdirSync(dir, { mode: 0o700 });
    const { stateFile, qemuPid } = await crashMidPull(dir);
    // A SIGKILLed QEMU never stores its bitmaps: the checkpoints were in use.
    process.kill(qemuPid, 'SIGKILL');
    await gone(qemuPid);
    const m = suite.adopt(await Machine.relaunch(stateFile, { logger: quiet }));
    const backups = path.join(dir, 'backup');

    const refused = await pullBackupIncremental(m, { dir: backups }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      name: 'BackupChainError',
      interrupted: { id: '0002' },
    });
    expect((refused as Error).message).toMatch(
      /backup 0002 of process \d+ was interrupted.*a full backup is needed/,
    );
    // Nothing of the interrupted backup is left, and no socket blocks the next pull.
    expect(await leftovers(m, backups)).toMatchObject({ runDir: [], backupDir: [] });
    const full = await pullBackupIncremental(m, { dir: backups, ifBroken: 'full' });
    expect(full.point).toMatchObject({ id: '0002', kind: 'full' });
    expect(await restoredSha(backups, '0002', path.join(suite.dir, 'drop-restore'))).toBe(
      content(CHILD),
    );
  }, 120_000);
});
