/**
 * Machine-specific helpers for the real-QEMU suites: the tiny test guest as a `VmConfig` and
 * readers of QEMU's view (block nodes, peripherals, PCI). Binary lookup, skip rules, 0700
 * temp dirs and killing every QEMU a test started come from `@qmpkit/testguest/test-support`
 * (`qemuSuite()`). Not part of the published package.
 */
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { writeGuestImage } from '@qmpkit/testguest';
import { TEST_ACCEL } from '@qmpkit/testguest/test-support';
import type { Machine } from './machine.js';

/**
 * The tiny test guest as a configuration: pc machine, TCG (fast here; see the package
 * README), 32 MiB (or `memoryMiB`), the boot disk on IDE, COM1 on chardev `ser0` (to be a
 * console); `dirtyRam` makes it rewrite all RAM above 1 MiB on every iteration.
 */
export async function guestConfig(
  dir: string,
  options: { name?: string; intervalMs?: number; dirtyRam?: boolean; memoryMiB?: number } = {},
): Promise<VmConfig> {
  const image = await writeGuestImage(path.join(dir, `${options.name ?? 'guest'}.raw`), {
    intervalMs: options.intervalMs ?? 20,
    ...(options.dirtyRam === true ? { dirtyRam: true } : {}),
  });
  return {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: (options.memoryMiB ?? 32) * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'boot-file', filename: image },
      { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
}

/** Names of the block nodes QEMU has, sorted, with their drivers. */
export async function namedNodes(machine: Machine): Promise<string[]> {
  const nodes = await machine.qmp.execute('query-named-block-nodes', { flat: true });
  return nodes.map((n) => `${n['node-name']}:${n.drv}`).sort();
}

/** `/machine/peripheral` children as `id:type`, sorted. */
export async function peripherals(machine: Machine): Promise<string[]> {
  const list = await machine.qmp.execute('qom-list', { path: '/machine/peripheral' });
  return list
    .filter((p) => p.type.startsWith('child<'))
    .map((p) => `${p.name}:${p.type.slice(6, -1)}`)
    .sort();
}

/** qdev ids of the PCI devices, sorted. */
export async function pciIds(machine: Machine): Promise<string[]> {
  const buses = await machine.qmp.execute('query-pci');
  return buses
    .flatMap((b) => b.devices.map((d) => d.qdev_id))
    .filter((id) => id !== '')
    .sort();
}

/**
 * The test guest booting from a qcow2 image (the guest rewrites its LBA 1 on every iteration):
 * `sizeMiB` of disk, everything past the guest's two sectors filled with bytes from a seeded
 * generator so a copy has real data to move. Node names as in `guestConfig` (`boot`, `boot-file`).
 */
export async function qcow2GuestConfig(
  dir: string,
  options: { name: string; sizeMiB?: number; seed?: number; qemuImg?: string },
): Promise<{ config: VmConfig; image: string }> {
  const { open } = await import('node:fs/promises');
  const { runQemuImg } = await import('./qemu-img.js');
  const base = await guestConfig(dir, { name: options.name });
  const raw = path.join(dir, `${options.name}.raw`);
  const size = (options.sizeMiB ?? 4) * MiB;
  const fill = Buffer.alloc(size - 1024);
  let x = options.seed ?? 1;
  for (let i = 0; i < fill.length; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    fill.writeUInt32LE(x, i);
  }
  const file = await open(raw, 'r+');
  try {
    await file.write(fill, 0, fill.length, 1024);
  } finally {
    await file.close();
  }
  const image = path.join(dir, `${options.name}.qcow2`);
  await runQemuImg(['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, image], {
    ...(options.qemuImg !== undefined ? { qemuImg: options.qemuImg } : {}),
  });
  return {
    image,
    config: {
      ...base,
      blockdevs: [
        { driver: 'file', 'node-name': 'boot-file', filename: image },
        { driver: 'qcow2', 'node-name': 'boot', file: 'boot-file' },
      ],
    },
  };
}
