import { describe, expect, it } from 'vitest';
import { isConfigValidationError, isModelError } from './errors.js';
import { type PlugStep, plug, type UnplugStep, undoPlug, unplug, withParts } from './hotplug.js';
import { MiB, type VmConfig } from './model.js';
import { sampleConfig } from './sample.test-helper.js';

function label(step: PlugStep | UnplugStep): string {
  const args = step.arguments as Record<string, unknown>;
  return `${step.execute} ${String(args.id ?? args['node-name'])}`;
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('plug', () => {
  it('adds a disk with its nodes, a NIC with its netdev, in dependency order', () => {
    const { config, steps } = plug(sampleConfig(), {
      // Declared in an order QEMU could not create them in.
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd1', drive: 'hot' },
        { driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' },
      ],
      blockdevs: [
        { driver: 'qcow2', 'node-name': 'hot', file: 'hot-file', backing: 'base' },
        { driver: 'file', 'node-name': 'hot-file', filename: '/images/hot.qcow2' },
      ],
      netdevs: [{ id: 'net1', type: 'user' }],
    });
    expect(steps.map(label)).toEqual([
      'netdev_add net1',
      'blockdev-add hot-file',
      'blockdev-add hot',
      'device_add vd1',
      'device_add nic1',
    ]);
    expect(steps[0]).toEqual({ execute: 'netdev_add', arguments: { id: 'net1', type: 'user' } });
    expect(steps[3]).toEqual({
      execute: 'device_add',
      arguments: { driver: 'virtio-blk-pci', id: 'vd1', drive: 'hot' },
    });
    expect(config.devices?.map((d) => d.id).slice(-2)).toEqual(['vd1', 'nic1']);
  });

  it('adds objects and chardevs first, and a controller before the devices on its bus', () => {
    const { steps } = plug(sampleConfig(), {
      devices: [
        {
          driver: 'virtserialport',
          id: 'port1',
          chardev: 'agent',
          bus: 'vser1.0',
          name: 'org.qemu.guest_agent.0',
        },
        { driver: 'virtio-serial-pci', id: 'vser1' },
      ],
      chardevs: [
        {
          id: 'agent',
          backend: {
            type: 'socket',
            data: {
              addr: { type: 'unix', data: { path: '/run/qga.sock' } },
              server: true,
              wait: false,
            },
          },
        },
      ],
      objects: [{ 'qom-type': 'iothread', id: 'io1' }],
    });
    expect(steps.map(label)).toEqual([
      'object-add io1',
      'chardev-add agent',
      'device_add vser1',
      'device_add port1',
    ]);
    expect(steps[1]).toEqual({
      execute: 'chardev-add',
      arguments: {
        id: 'agent',
        backend: {
          type: 'socket',
          data: {
            addr: { type: 'unix', data: { path: '/run/qga.sock' } },
            server: true,
            wait: false,
          },
        },
      },
    });
  });

  it('hot-plugs chardevs the command line cannot express (chardev-add can)', () => {
    const { steps } = plug(sampleConfig(), {
      chardevs: [{ id: 'in', backend: { type: 'file', data: { out: '/o', in: '/i' } } }],
    });
    expect(steps.map(label)).toEqual(['chardev-add in']);
  });

  it('refuses parts with dangling references or clashing ids, naming them', () => {
    const error = thrown(() =>
      plug(sampleConfig(), {
        blockdevs: [{ driver: 'null-co', 'node-name': 'disk0' }],
        devices: [{ driver: 'virtio-blk-pci', id: 'vd9', drive: 'ghost' }],
      }),
    );
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain(
      "node 'disk0': node-name 'disk0' is already used by $.blockdevs[0]",
    );
    expect(String(error)).toContain("device 'vd9': drive 'ghost' names no block node");
  });

  it('refuses devices QEMU cannot hot-plug', () => {
    const error = thrown(() =>
      plug(sampleConfig(), { devices: [{ driver: 'isa-serial', id: 'serial1', chardev: 'con0' }] }),
    );
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain(
      "device 'serial1': driver isa-serial cannot be hot-plugged; change the configuration and restart QEMU",
    );
  });
});

describe('unplug', () => {
  const withHotDisk = (): VmConfig =>
    withParts(sampleConfig(), {
      netdevs: [{ id: 'net1', type: 'user' }],
      blockdevs: [
        { driver: 'file', 'node-name': 'hot-file', filename: '/images/hot.qcow2' },
        { driver: 'qcow2', 'node-name': 'hot', file: 'hot-file', backing: 'base' },
      ],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd1', drive: 'hot' },
        { driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' },
      ],
    });

  it('removes devices first (awaiting DEVICE_DELETED), then nodes top-down, then the netdev', () => {
    const { steps, removed, config } = unplug(withHotDisk(), { devices: ['vd1', 'nic1'] });
    expect(steps.map(label)).toEqual([
      'device_del nic1',
      'device_del vd1',
      'blockdev-del hot',
      'blockdev-del hot-file',
      'netdev_del net1',
    ]);
    expect(steps[1]).toEqual({
      execute: 'device_del',
      arguments: { id: 'vd1' },
      awaitEvent: { event: 'DEVICE_DELETED', match: { device: 'vd1' } },
    });
    expect(steps[2]).toEqual({ execute: 'blockdev-del', arguments: { 'node-name': 'hot' } });
    // The shared, still used backing node 'base' stays.
    expect(removed).toEqual({
      objects: [],
      chardevs: [],
      netdevs: ['net1'],
      blockdevs: ['hot', 'hot-file'],
      devices: ['nic1', 'vd1'],
    });
    expect(config).toEqual({
      ...sampleConfig(),
      objects: sampleConfig().objects,
      chardevs: sampleConfig().chardevs,
    });
  });

  it('plug then unplug gives back the configuration', () => {
    const parts = {
      blockdevs: [{ driver: 'null-co', 'node-name': 'n1' }] as const,
      devices: [{ driver: 'virtio-blk-pci', id: 'vd1', drive: 'n1' }] as const,
    };
    const added = plug(sampleConfig(), parts);
    const removed = unplug(added.config, { devices: ['vd1'] });
    expect(removed.config).toEqual(sampleConfig());
    expect(removed.steps.map(label)).toEqual(['device_del vd1', 'blockdev-del n1']);
  });

  it('removes the devices on a removed controller, and what only they used', () => {
    const { steps } = unplug(sampleConfig(), { devices: ['scsi0'] });
    expect(steps.map(label)).toEqual([
      'device_del sd0',
      'device_del scsi0',
      'blockdev-del data-throttle',
      'blockdev-del data',
      'blockdev-del data-file',
      'object-del tg0',
    ]);
  });

  it("keeps what others still use (io0 is also vd0's iothread)", () => {
    const { removed } = unplug(sampleConfig(), { devices: ['scsi0'] });
    expect(removed.objects).toEqual(['tg0']);
  });

  it('without cascade, removes only what was asked and refuses to leave references dangling', () => {
    const { steps } = unplug(withHotDisk(), { devices: ['vd1'] }, { cascade: false });
    expect(steps.map(label)).toEqual(['device_del vd1']);
    const error = thrown(() => unplug(withHotDisk(), { blockdevs: ['hot'] }, { cascade: false }));
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain("device 'vd1': drive 'hot' names no block node");
  });

  it('never cascades into what the machine uses, and refuses to remove it', () => {
    const config: VmConfig = {
      machine: { type: 'pc-i440fx-7.2', 'memory-backend': 'mem' },
      memory: { size: 64 * MiB },
      objects: [{ 'qom-type': 'memory-backend-ram', id: 'mem', size: 64 * MiB }],
    };
    const error = thrown(() => unplug(config, { objects: ['mem'] }));
    expect(String(error)).toContain("machine: memory-backend 'mem' names no object");
    const dimm = unplug(
      { ...config, devices: [{ driver: 'pc-dimm', id: 'dimm0', props: { memdev: 'mem' } }] },
      { devices: ['dimm0'] },
    );
    expect(dimm.removed.objects).toEqual([]);
    expect(unplug(sampleConfig(), { devices: ['vd0'] }).removed.blockdevs).toEqual([
      'disk0',
      'base',
      'base-file',
      'disk0-file',
    ]);
  });

  it('refuses names the configuration does not have, and devices QEMU cannot unplug', () => {
    const missing = thrown(() => unplug(sampleConfig(), { devices: ['nope'] }));
    expect(isModelError(missing)).toBe(true);
    expect(String(missing)).toContain("the configuration has no device 'nope'");
    expect(String(thrown(() => unplug(sampleConfig(), { devices: ['ide0'] })))).toContain(
      'ide-hd cannot be hot-unplugged',
    );
  });
});

describe('undoPlug', () => {
  it('inverts executed plug steps, last first', () => {
    const { steps } = plug(sampleConfig(), {
      objects: [{ 'qom-type': 'iothread', id: 'io1' }],
      chardevs: [{ id: 'c1', backend: { type: 'null', data: {} } }],
      netdevs: [{ id: 'net1', type: 'user' }],
      blockdevs: [{ driver: 'null-co', 'node-name': 'n1' }],
      devices: [{ driver: 'virtio-blk-pci', id: 'vd1', drive: 'n1', iothread: 'io1' }],
    });
    expect(undoPlug(steps).map(label)).toEqual([
      'device_del vd1',
      'blockdev-del n1',
      'netdev_del net1',
      'chardev-remove c1',
      'object-del io1',
    ]);
    // Step 3 failed: undo the two that ran.
    expect(undoPlug(steps.slice(0, 2)).map(label)).toEqual(['chardev-remove c1', 'object-del io1']);
    expect(undoPlug(steps)[0]).toEqual({
      execute: 'device_del',
      arguments: { id: 'vd1' },
      awaitEvent: { event: 'DEVICE_DELETED', match: { device: 'vd1' } },
    });
  });
});
