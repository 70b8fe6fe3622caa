// Push-mode backup of a running VM's disk (@qmpkit/backup): a full backup and an incremental
// after a given share of the disk was rewritten, next to `qemu-img convert` and `cp --sparse`
// of the same image, in the same run on the same disk.
//
//   pnpm bench:backup [--size 1024] [--changed 5] [--accel tcg]
//
// The disk is a qcow2 image of --size MiB, every cluster allocated with non-zero data (the
// `qemu-io` tool, before the VM starts), attached to a VM that runs no guest. The changed
// data is written between the two backups through the device's own block backend (HMP
// `qemu-io -d disk0 "write …"`), in 1 MiB runs spread evenly over the disk.
// The full backup runs twice: as shipped (copy offload) and with QEMU's plain read/write copy.
// Baselines: `qemu-img convert -U -O qcow2` of the live image (it syncs at close, as QEMU's
// target node does when it is deleted) and `cp --sparse=always` (no sync). The page cache is
// not dropped (that needs root): all three may read from it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { backupFull, backupIncremental } from '@qmpkit/backup';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import { runQemuImg } from '@qmpkit/machine';
import { launchFilledDisk } from './guest-config.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    changed: { type: 'string', default: '5' },
    accel: { type: 'string', default: 'tcg' },
  },
});
const sizeMiB = Number(values.size);
const changedPercent = Number(values.changed);
const accel = values.accel.split(',').filter((a) => a !== '') as AccelConfig[];
const exec = promisify(execFile);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const mibps = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-backup-'));
try {
  const { vm, image } = await launchFilledDisk(dir, sizeMiB, accel);
  try {
    const backups = join(dir, 'backups');
    let full: Awaited<ReturnType<typeof backupFull>> | undefined;
    const fullMs = await timed(async () => {
      full = await backupFull(vm, { dir: backups });
    });
    // The same full backup with QEMU's plain read/write copy (no copy offload), for comparison.
    const rwMs = await timed(() =>
      backupFull(vm, { dir: join(dir, 'backups-rw'), copyOffload: false }),
    );
    const convertMs = await timed(() =>
      runQemuImg([
        'convert',
        '-U',
        '-f',
        'qcow2',
        '-O',
        'qcow2',
        image,
        join(dir, 'convert.qcow2'),
      ]),
    );
    const cpMs = await timed(() => exec('cp', ['--sparse=always', image, join(dir, 'cp.qcow2')]));

    // Rewrite changed% of the disk in 1 MiB runs, evenly spread.
    const runs = Math.max(1, Math.round((sizeMiB * changedPercent) / 100));
    const stride = Math.floor(sizeMiB / runs);
    for (let i = 0; i < runs; i++)
      await vm.qmp.hmp(`qemu-io -d disk0 "write -P 0xa5 ${i * stride}M 1M"`);
    let inc: Awaited<ReturnType<typeof backupIncremental>> | undefined;
    const incMs = await timed(async () => {
      inc = await backupIncremental(vm, { dir: backups });
    });
    const bytes = sizeMiB * MiB;
    const copied = inc?.point.disks[0]?.copied ?? 0;
    const incFile = join(backups, inc?.point.disks[0]?.file ?? '');
    const fullFile = join(backups, full?.point.disks[0]?.file ?? '');

    console.log(`backup of a ${sizeMiB} MiB qcow2 disk (all allocated), accel ${accel.join(',')}`);
    console.log(
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    console.log(
      `full backup          ${fullMs.toFixed(0).padStart(7)} ms  ${mibps(bytes, fullMs).padStart(10)}  file ${((await stat(fullFile)).size / MiB).toFixed(1)} MiB`,
    );
    console.log(
      `full, no offload     ${rwMs.toFixed(0).padStart(7)} ms  ${mibps(bytes, rwMs).padStart(10)}`,
    );
    console.log(
      `qemu-img convert     ${convertMs.toFixed(0).padStart(7)} ms  ${mibps(bytes, convertMs).padStart(10)}`,
    );
    console.log(
      `cp --sparse=always   ${cpMs.toFixed(0).padStart(7)} ms  ${mibps(bytes, cpMs).padStart(10)}`,
    );
    console.log(
      `incremental (${changedPercent}%)    ${incMs.toFixed(0).padStart(7)} ms  copied ${(copied / MiB).toFixed(1)} MiB of ${runs} MiB written, file ${((await stat(incFile)).size / MiB).toFixed(1)} MiB`,
    );
    console.log(
      `ratios: full speed / qemu-img convert ${(convertMs / fullMs).toFixed(2)}x (goal >= 0.8; without offload ${(convertMs / rwMs).toFixed(2)}x), / cp ${(cpMs / fullMs).toFixed(2)}x; incremental time / full ${(incMs / fullMs).toFixed(3)} for ${(copied / bytes).toFixed(3)} of the data`,
    );
  } finally {
    await vm.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
