// Boot the tiny test guest, read its counter on the serial console, hot-plug a disk and a
// NIC, take them out again, and stop. The state file keeps the model through all of it.
// Run from the repository root:
//   node --conditions=@qmpkit/source --import tsx packages/machine/examples/basic.ts
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, readState } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';

const dir = await mkdtemp(join(tmpdir(), 'machine-example-')); // private (0700)
try {
  const image = await writeGuestImage(join(dir, 'guest.raw'), { intervalMs: 20 });
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel: ['tcg'], // leave it out for the default ['kvm', 'tcg']
    memory: { size: 32 * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }], // becomes a console
    blockdevs: [
      { driver: 'file', 'node-name': 'boot-file', filename: image },
      { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };

  // QMP and COM1 are socketpairs QEMU inherits: no socket files, no connect race.
  const vm = await launch(config, { consoles: ['ser0'], runDirParent: dir });
  try {
    console.log(`QEMU ${vm.qemuVersion.major}.${vm.qemuVersion.minor}, pid ${vm.pid}, ${vm.accel}`);
    const serial = vm.console('ser0');
    const line = await serial.expect(/C=([0-9A-F]{8})\r\n/, { timeout: 20_000 });
    console.log(`counter ${Number.parseInt(line.groups[0] ?? '', 16)} on COM1`);

    // Hot-plug: the model's steps, in dependency order; the state file follows.
    const disk = join(dir, 'data.qcow2');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M'], { stdio: 'inherit' });
    await vm.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'data-file', filename: disk },
        { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
      ],
      netdevs: [{ id: 'net0', type: 'user', restrict: true }],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd0', drive: 'data' },
        { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0' },
      ],
    });
    const pci = await vm.qmp.execute('query-pci');
    console.log('PCI:', pci[0]?.devices.map((d) => d.qdev_id || d.class_info.desc).join(', '));
    const stored = await readState(vm.stateFile ?? '');
    console.log('state file devices:', stored.config.devices?.map((d) => d.id).join(', '));

    // Unplug waits for DEVICE_DELETED (the test guest acknowledges ACPI ejects), then
    // removes what only those devices used: the nodes and the netdev.
    const { removed } = await vm.unplug({ devices: ['vd0', 'nic0'] });
    console.log('removed:', JSON.stringify(removed));
  } finally {
    console.log('exit', await vm.stop()); // quit → SIGTERM → SIGKILL, each with a deadline
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
