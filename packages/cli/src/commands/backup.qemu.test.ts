/**
 * `qmpkit backup` against a real QEMU (the binary under test) under a `qmpkit vm start`
 * supervisor: full and
 * incremental through the supervisor, the chain refused before a full, list and restore
 * without a VM, a restore equal to the disks (`qemu-img compare`), and a refused restore into
 * a non-empty directory; after `vm stop`, an incremental through qemu-storage-daemon that
 * continues the chain (a write made while stopped is in it, exact). No guest runs; the disks hold patterns written with the `qemu-io`
 * tool before the VM starts. One VM for the file.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, toJSON } from '@qmpkit/devices';
import { runQemuImg as runImg } from '@qmpkit/machine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  startVm,
  testVmConfig,
} from '../qemu.test-support.js';
import { ControlClient } from '../vm/client.js';
import type { BackupSummary } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-backup-cli-' });

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
/** The qemu-img of the binary under test (the CLI's own backup runs `qemu-img` from PATH). */
const runQemuImg = (args: readonly string[]) => runImg(args, { qemuImg: QEMU_BINARY.img });

describe.skipIf(skipQemu)(`qmpkit backup (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  const backups = path.join(work, 'backups');
  const disks = ['disk0', 'disk1'];
  let config: string;

  beforeAll(async () => {
    for (const [i, d] of disks.entries()) {
      const image = path.join(work, `${d}.qcow2`);
      await runQemuImg(['create', '-q', '-f', 'qcow2', image, String(4 * MiB)]);
      await promisify(execFile)(QEMU_BINARY.io, [
        '-f',
        'qcow2',
        image,
        '-c',
        `write -P 0x${(0x51 + i).toString(16)} ${i * MiB} 1M`,
      ]);
    }
    const vm = testVmConfig({ boot: null, disks });
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
    await startVm(suite, dir, config);
  });

  afterAll(async () => {
    await run('vm', 'stop', '--dir', dir);
  });

  it('refuses an incremental before a full, then takes a full and an incremental', async () => {
    const early = await run('backup', 'incremental', '--dir', dir, '--to', backups);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(/BackupChainError: .*holds no full backup yet/);

    const full = await run('backup', 'full', '--dir', dir, '--to', backups);
    expect(full.err).toMatch(/^full backup: backup/m); // plain progress lines off a terminal
    expect(full.code).toBe(0);
    expect(full.out).toMatch(
      /^full backup 0001 in \d+ ms: disk0 4(\.0)? MiB, disk1 4(\.0)? MiB copied\n$/,
    );

    const inc = await run('backup', 'incremental', '--dir', dir, '--to', backups, '--json');
    expect(inc.code).toBe(0);
    const summary = JSON.parse(inc.out) as BackupSummary;
    expect(summary).toMatchObject({ kind: 'incremental', point: '0002', repaired: null });
    // Nothing was written between the two points.
    expect(summary.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', 0],
      ['disk1', 0],
    ]);

    const list = await run('backup', 'list', '--to', backups);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^0001 +full .* disk0,disk1 /m);
    expect(list.out).toMatch(/^0002 +incremental .* disk0,disk1 /m);
  });

  it('the supervisor killed mid-backup, its QEMU ended cleanly after: the next incremental through a new supervisor repairs and is exact', async () => {
    const crash = path.join(work, 'crash-backups');
    expect((await run('backup', 'full', '--dir', dir, '--to', crash)).code).toBe(0);
    const before = await stat(path.join(crash, 'disk0.0001.qcow2'));
    const status = JSON.parse((await run('vm', 'status', '--dir', dir, '--json')).out) as {
      pid: number;
      qemu: { pid: number };
    };
    // A full held by its rate limit (1 byte per second: QEMU lets the first chunk through,
    // then the job waits for hours), so the supervisor dies with its job running.
    const client = await ControlClient.connect(dir);
    const progressed = new Promise<void>((resolve) => {
      const held = client.request(
        'backup',
        { kind: 'full', to: crash, speed: 1 },
        { onProgress: () => resolve() },
      );
      held.result.catch(() => {
        // The supervisor is killed below: this request never gets its answer.
      });
    });
    await progressed;
    expect(existsSync(path.join(crash, '.backup-pending.json'))).toBe(true);
    process.kill(status.pid, 'SIGKILL');
    await gone(status.pid);
    client.close();
    // Its QEMU lived on; a clean end (as at a host shutdown) stores the checkpoint bitmaps.
    // (A relaunch would SIGKILL it: the bitmaps are then inconsistent and a full is needed.)
    expect(alive(status.qemu.pid)).toBe(true);
    process.kill(status.qemu.pid, 'SIGTERM');
    await gone(status.qemu.pid);

    await startVm(suite, dir);
    const inc = await run('backup', 'incremental', '--dir', dir, '--to', crash, '--json');
    expect(inc.code).toBe(0);
    expect(inc.err).toMatch(
      /backup 0002 \(push\) of process \d+ had been interrupted; its leftovers were removed \(checkpoint chain: untouched\)/,
    );
    const summary = JSON.parse(inc.out) as BackupSummary;
    expect(summary).toMatchObject({
      kind: 'incremental',
      point: '0002',
      repaired: null,
      interrupted: { id: '0002', mode: 'push', pid: status.pid, chain: 'untouched' },
    });
    // Nothing was written since the full: the chain carried the incremental, with no copy.
    expect(summary.disks.map((d) => d.copied)).toEqual([0, 0]);
    expect((await readdir(crash)).filter((f) => !f.startsWith('backup.json')).sort()).toEqual([
      'disk0.0001.qcow2',
      'disk0.0002.qcow2',
      'disk1.0001.qcow2',
      'disk1.0002.qcow2',
    ]);
    const after = await stat(path.join(crash, 'disk0.0001.qcow2'));
    expect(after.mtimeMs).toBe(before.mtimeMs);
    // The restored point equals the disks (read shared: the VM runs).
    const to = path.join(work, 'crash-restored');
    expect(
      (await run('backup', 'restore', '--from', crash, '--to', to, '--format', 'raw')).code,
    ).toBe(0);
    for (const d of disks)
      await runQemuImg([
        'compare',
        '-U',
        '-f',
        'raw',
        '-F',
        'qcow2',
        path.join(to, `${d}.raw`),
        path.join(work, `${d}.qcow2`),
      ]);
  });

  it('restores without a VM into a new directory, and refuses a non-empty one', async () => {
    const stop = await run('vm', 'stop', '--dir', dir);
    expect(stop.code).toBe(0);
    const to = path.join(work, 'restored');
    const restored = await run(
      'backup',
      'restore',
      '--from',
      backups,
      '--to',
      to,
      '--format',
      'raw',
    );
    expect(restored.err).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.out).toMatch(/^restored point 0002 \(incremental\)$/m);
    for (const d of disks)
      await runQemuImg([
        'compare',
        '-f',
        'raw',
        '-F',
        'qcow2',
        path.join(to, `${d}.raw`),
        path.join(work, `${d}.qcow2`),
      ]);
    const again = await run('backup', 'restore', '--from', backups, '--to', to);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/is not empty \(disk0\.raw, disk1\.raw\)/);
  });

  it('stopped VM: an incremental through qemu-storage-daemon continues the chain, exact; --pull is refused', async () => {
    // The VM was stopped by the test before. Pull mode needs its supervisor: refused, exit 2.
    const pull = await run('backup', 'incremental', '--dir', dir, '--to', backups, '--pull');
    expect(pull.code).toBe(2);
    expect(pull.err).toMatch(/--pull needs the running VM/);
    // Written while the VM is stopped, by the qemu-io tool: the checkpoint bitmap QEMU stored
    // in the qcow2 file is loaded by qemu-io too and records the write.
    await promisify(execFile)(QEMU_BINARY.io, [
      '-f',
      'qcow2',
      path.join(work, 'disk0.qcow2'),
      '-c',
      'write -P 0x77 2M 64k',
    ]);
    const inc = await run('backup', 'incremental', '--dir', dir, '--to', backups, '--json');
    expect(inc.err).not.toMatch(/qmpkit: backup/);
    expect(inc.code).toBe(0);
    const summary = JSON.parse(inc.out) as BackupSummary;
    expect(summary).toMatchObject({ kind: 'incremental', point: '0003', repaired: null });
    expect(summary.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', 64 * 1024],
      ['disk1', 0],
    ]);
    const v = QEMU_BINARY.version;
    expect(summary.daemon?.version).toMatch(new RegExp(`^${v?.major}\\.${v?.minor}\\.`));
    const to = path.join(work, 'restored-stopped');
    const restored = await run(
      'backup',
      'restore',
      '--from',
      backups,
      '--to',
      to,
      '--format',
      'raw',
    );
    expect(restored.code).toBe(0);
    expect(restored.out).toMatch(/^restored point 0003 \(incremental\)$/m);
    for (const d of disks)
      await runQemuImg([
        'compare',
        '-f',
        'raw',
        '-F',
        'qcow2',
        path.join(to, `${d}.raw`),
        path.join(work, `${d}.qcow2`),
      ]);
  });
});
