/**
 * Hot-plug against a real QEMU 7.2 with the test guest running (it acknowledges ACPI PCI
 * eject requests, so `device_del` completes): the model, QEMU and the state file agree
 * after plug, unplug, a refused step (rolled back), events and a block job.
 */
import path from 'node:path';
import { runQemuImg } from '@qmpkit/testguest';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isMachinePlugError } from './errors.js';
import { launch, type Machine } from './machine.js';
import { guestConfig, namedNodes, pciIds, peripherals } from './qemu.test-support.js';
import { readState } from './state.js';

// Each test's machines are killed after it, then every QEMU whose pidfile lies under the
// suite's dir (and every pid a child reported), also after a failure or timeout.
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-machine-test-' });

async function bootedGuest(name: string): Promise<Machine> {
  const m = suite.adopt(
    await launch(await guestConfig(suite.dir, { name }), {
      ...launchQemu(),
      consoles: ['ser0'],
      runDirParent: suite.dir,
    }),
  );
  // PCI unplug needs the guest's loop running.
  await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 20_000 });
  return m;
}

async function storedConfig(m: Machine) {
  return (await readState(m.stateFile ?? '')).config;
}

describe('hot-plug', () => {
  it('plugs a qcow2 disk on virtio-blk and a NIC on a user netdev, and unplugs them', async () => {
    const m = await bootedGuest('plug');
    const image = path.join(suite.dir, 'hot.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', image, '8M']);
    const before = {
      nodes: await namedNodes(m),
      devices: await peripherals(m),
      pci: await pciIds(m),
    };

    const { steps } = await m.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'hot-file', filename: image },
        { driver: 'qcow2', 'node-name': 'hot', file: 'hot-file' },
      ],
      netdevs: [{ id: 'net1', type: 'user', restrict: true }],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd1', drive: 'hot', serial: 'hot-1' },
        { driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' },
      ],
    });
    expect(steps.map((s) => s.execute)).toEqual([
      'netdev_add',
      'blockdev-add',
      'blockdev-add',
      'device_add',
      'device_add',
    ]);
    const blocks = await m.qmp.execute('query-block');
    const vd1 = blocks.find((b) => b.qdev === '/machine/peripheral/vd1/virtio-backend');
    expect(vd1?.inserted).toMatchObject({ 'node-name': 'hot', drv: 'qcow2', file: image });
    expect(await pciIds(m)).toEqual([...before.pci, 'nic1', 'vd1'].sort());
    expect(await namedNodes(m)).toEqual([...before.nodes, 'hot-file:file', 'hot:qcow2'].sort());
    expect(await m.qmp.hmp('info network')).toMatch(/\bnet1\b/);
    // The model and the state file know.
    expect(m.config.devices?.map((d) => d.id)).toEqual(['boot0', 'com1', 'vd1', 'nic1']);
    expect(await storedConfig(m)).toEqual(m.config);

    const removed = await m.unplug({ devices: ['vd1', 'nic1'] });
    expect(removed.removed).toMatchObject({
      devices: ['nic1', 'vd1'],
      blockdevs: ['hot', 'hot-file'],
      netdevs: ['net1'],
    });
    expect(await namedNodes(m)).toEqual(before.nodes);
    expect(await peripherals(m)).toEqual(before.devices);
    expect(await pciIds(m)).toEqual(before.pci);
    expect(await m.qmp.hmp('info network')).not.toMatch(/\bnet1\b/);
    expect(m.config.devices?.map((d) => d.id)).toEqual(['boot0', 'com1']);
    expect(m.config.blockdevs?.map((n) => n['node-name'])).toEqual(['boot-file', 'boot']);
    expect(await storedConfig(m)).toEqual(m.config);
    // The guest went on counting through all of it.
    await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 10_000 });
  });

  it('rolls back the steps before a refused one and leaves the model unchanged', async () => {
    const m = await bootedGuest('rollback');
    const notQcow2 = path.join(suite.dir, 'plain.raw');
    await runQemuImg(['create', '-q', '-f', 'raw', notQcow2, '1M']);
    const before = { nodes: await namedNodes(m), config: m.config };
    const error = await m
      .plug({
        blockdevs: [
          { driver: 'file', 'node-name': 'bad-file', filename: notQcow2 },
          { driver: 'qcow2', 'node-name': 'bad', file: 'bad-file' },
        ],
        devices: [{ driver: 'virtio-blk-pci', id: 'vd2', drive: 'bad' }],
      })
      .catch((e: unknown) => e);
    expect(isMachinePlugError(error)).toBe(true);
    if (!isMachinePlugError(error)) return;
    expect(error.step.execute).toBe('blockdev-add');
    expect(error.completed.map((s) => s.execute)).toEqual(['blockdev-add']);
    expect(error.rolledBack).toBe(true);
    expect(error.message).toMatch(/qcow2/i);
    expect(await namedNodes(m)).toEqual(before.nodes);
    expect(m.config).toBe(before.config);
    expect(await storedConfig(m)).toEqual(before.config);
  });

  it('follows DEVICE_DELETED sent for a device_del it did not issue, and a mirror job that pivots a disk', async () => {
    const m = await bootedGuest('events');
    const a = path.join(suite.dir, 'a.qcow2');
    const b = path.join(suite.dir, 'b.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', a, '4M']);
    await runQemuImg(['create', '-q', '-f', 'qcow2', b, '4M']);
    await m.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'a-file', filename: a },
        { driver: 'qcow2', 'node-name': 'a', file: 'a-file' },
        { driver: 'file', 'node-name': 'b-file', filename: b },
        { driver: 'qcow2', 'node-name': 'b', file: 'b-file' },
      ],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vda', drive: 'a' },
        { driver: 'virtio-balloon-pci', id: 'balloon0' },
      ],
    });

    // Mirror vda's disk to node b and complete: QEMU switches the device to b.
    const completed = m.qmp.expectEvent('BLOCK_JOB_COMPLETED', (e) => e.data.device === 'mirror0');
    const ready = m.qmp.expectEvent('BLOCK_JOB_READY', (e) => e.data.device === 'mirror0');
    await m.qmp.execute('blockdev-mirror', {
      'job-id': 'mirror0',
      device: 'a',
      target: 'b',
      sync: 'full',
    });
    await ready.wait({ timeout: 20_000 });
    await m.qmp.execute('block-job-complete', { device: 'mirror0' });
    await completed.wait({ timeout: 20_000 });
    await expect
      .poll(() => m.config.devices?.find((d) => d.id === 'vda'), { timeout: 5_000 })
      .toMatchObject({ drive: 'b' });
    // The model changes before the state file is written: wait for the write as well.
    await expect
      .poll(async () => (await storedConfig(m)).devices?.find((d) => d.id === 'vda'), {
        timeout: 5_000,
      })
      .toMatchObject({ drive: 'b' });

    // A device_del issued behind the machine's back: the model follows the event.
    const deleted = m.qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === 'balloon0');
    await m.qmp.execute('device_del', { id: 'balloon0' });
    await deleted.wait({ timeout: 20_000 });
    await expect
      .poll(() => m.config.devices?.map((d) => d.id), { timeout: 5_000 })
      .toEqual(['boot0', 'com1', 'vda']);
    await expect
      .poll(async () => (await storedConfig(m)).devices?.map((d) => d.id), { timeout: 5_000 })
      .toEqual(['boot0', 'com1', 'vda']);
  });

  it('records DEVICE_TRAY_MOVED of a CD-ROM in the runtime facts and the state file', async () => {
    const config = await guestConfig(suite.dir, { name: 'tray' });
    const m = suite.adopt(
      await launch(
        {
          ...config,
          // Paused: the firmware would lock the tray and move it with ATAPI commands, which
          // QEMU does not report as events.
          paused: true,
          devices: [...(config.devices ?? []), { driver: 'ide-cd', id: 'cd0', bus: 'ide.1' }],
        },
        { runDirParent: suite.dir },
      ),
    );
    const moved = m.qmp.expectEvent('DEVICE_TRAY_MOVED', (e) => e.data.id === 'cd0');
    await m.qmp.execute('blockdev-open-tray', { id: 'cd0' });
    await moved.wait({ timeout: 10_000 });
    expect(m.trays).toEqual({ cd0: 'open' });
    await expect
      .poll(async () => (await readState(m.stateFile ?? '')).runtime.trays, { timeout: 5_000 })
      .toEqual({ cd0: 'open' });
    const closed = m.qmp.expectEvent('DEVICE_TRAY_MOVED', (e) => e.data.id === 'cd0');
    await m.qmp.execute('blockdev-close-tray', { id: 'cd0' });
    await closed.wait({ timeout: 10_000 });
    expect(m.trays).toEqual({ cd0: 'closed' });
  });
});
