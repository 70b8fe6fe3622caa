/**
 * The demo tour with a real QEMU: the project's tiny boot-sector guest (it prints a counter on
 * COM1 and writes it to its disk), typed queries, a disk hot-plugged and unplugged, and a
 * snapshot saved and loaded with each strategy, with a timing table.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import { createQcow2Guest } from '@qmpkit/testguest';
import { bytes, ms, type Report } from './report.js';
import { snapshotTour } from './snapshots.js';

export interface RealTourOptions {
  readonly qemu: string;
  readonly accel: readonly string[];
}

const COUNTER = /C=([0-9A-F]{8})\r\n/;

/** The next counter line on COM1 (consumes the console up to it). */
export async function nextCounter(machine: Machine, timeout = 20_000): Promise<number> {
  const line = await machine.console('ser0').expect(COUNTER, { timeout });
  return Number.parseInt(line.groups[0] ?? '', 16);
}

export async function realTour(
  report: Report,
  workDir: string,
  options: RealTourOptions,
): Promise<void> {
  report.section('Boot the tiny test guest');
  const image = path.join(workDir, 'guest.qcow2');
  await createQcow2Guest(image, { intervalMs: 50 });
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...options.accel],
    memory: { size: 32 * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: image },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
  const started = performance.now();
  const machine = await launch(config, {
    qemu: options.qemu,
    consoles: ['ser0'],
    runDirParent: workDir,
  });
  try {
    const first = await nextCounter(machine);
    report.step(
      `QEMU ${machine.qemuVersion.major}.${machine.qemuVersion.minor}.${machine.qemuVersion.micro} (pid ${machine.pid}, accelerator ${machine.accel}) ready in ${ms(performance.now() - started)}; COM1 says C=${first}`,
    );

    report.section('Typed queries');
    const status = await machine.qmp.execute('query-status'); // typed: StatusInfo
    report.step(`query-status → ${status.status}`);
    const blocks = await machine.qmp.execute('query-block'); // typed: BlockInfo[]
    for (const b of blocks.filter((x) => x.inserted)) {
      report.step(
        `query-block → ${b.qdev ?? b.device}: ${b.inserted?.['node-name']} (${b.inserted?.image.format}, ${bytes(b.inserted?.image['virtual-size'])})`,
      );
    }
    const nodes = await machine.qmp.execute('query-named-block-nodes', { flat: true });
    report.step(
      `query-named-block-nodes → ${nodes.map((n) => `${n['node-name']} (${n.drv})`).join(', ')}`,
    );

    report.section('Hot-plug a qcow2 disk');
    const data = path.join(workDir, 'data.qcow2');
    const made = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', data, '16M'], {
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(`qemu-img create failed: ${made.stderr}`);
    await machine.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'data-file', filename: data },
        { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
      ],
      devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'data' }],
    });
    const pci = await machine.qmp.execute('query-pci');
    const vd0 = pci.flatMap((bus) => bus.devices).find((d) => d.qdev_id === 'vd0');
    report.step(
      `virtio-blk-pci vd0 plugged: PCI slot ${vd0?.slot}, ${vd0?.class_info.desc ?? 'storage'}`,
    );
    const { removed } = await machine.unplug({ devices: ['vd0'] });
    report.step(
      `unplugged after DEVICE_DELETED; removed ${[...removed.devices, ...removed.blockdevs].join(', ')}`,
    );

    report.section('Snapshots: save at counter N, run on, load, the guest continues from N+1');
    const rows = await snapshotTour(report, machine, workDir);
    report.section(`Timings (accelerator ${machine.accel}, 32 MiB guest)`);
    report.table(['strategy', 'save', 'load', 'downtime', 'state', 'continuity'], rows);
  } finally {
    await machine.stop();
  }
}
