// Back up a running VM's two disks (a full, then an incremental) and restore both points.
// No guest runs here: HMP `qemu-io` writes into the disks in its place. From the repository root:
//   node --conditions=@qmpkit/source --import tsx packages/backup/examples/basic.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupFull, backupIncremental, listBackups, restore } from '@qmpkit/backup';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, runQemuImg } from '@qmpkit/machine';

const dir = await mkdtemp(join(tmpdir(), 'backup-example-')); // private (0700)
try {
  const disks = ['disk0', 'disk1'];
  for (const d of disks)
    await runQemuImg(['create', '-q', '-f', 'qcow2', join(dir, `${d}.qcow2`), '16M']);
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel: ['tcg'],
    memory: { size: 32 * MiB },
    blockdevs: disks.flatMap((d) => [
      { driver: 'file' as const, 'node-name': `${d}-file`, filename: join(dir, `${d}.qcow2`) },
      { driver: 'qcow2' as const, 'node-name': d, file: `${d}-file` },
    ]),
    devices: disks.map((d, i) => ({ driver: 'ide-hd', id: d, drive: d, bus: `ide.${i}` })),
  };
  const vm = await launch(config, { runDirParent: dir });
  try {
    const write = (disk: string, pattern: string, offset: string, length: string) =>
      vm.qmp.hmp(`qemu-io -d ${disk} "write -P ${pattern} ${offset} ${length}"`);
    const backups = join(dir, 'backups');

    await write('disk0', '0x11', '0', '4M');
    const full = await backupFull(vm, { dir: backups }); // both disks, one instant
    console.log(`full ${full.point.id}: checkpoint ${full.point.checkpoint}`);

    await write('disk1', '0x22', '1M', '256k');
    const inc = await backupIncremental(vm, { dir: backups });
    const copied = inc.point.disks.map((d) => `${d.device} ${d.copied / 1024} KiB`).join(', ');
    console.log(`incremental ${inc.point.id}: copied ${copied}`);

    console.log((await listBackups(backups)).map((p) => `${p.id} ${p.kind}`));
    for (const point of [full.point.id, inc.point.id]) {
      const restored = await restore({ from: backups, to: join(dir, `restore-${point}`), point });
      console.log(`restored ${point}: ${restored.disks.map((d) => d.device).join(', ')}`);
    }
  } finally {
    await vm.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
