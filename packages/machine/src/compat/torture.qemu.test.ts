/**
 * `tortureVm` on real binaries with the tiny test guest (disk on IDE, an e1000 NIC on a user
 * netdev, COM1 as console): 5 cycles 7.2 → 7.2 and 5 cycles alternating 7.2 ⇄ 10.0
 * (`pnpm qemu:fetch 10.0`; CI fetches it) all continue exactly; a restore with a wrong device
 * set (an extra virtio-rng) is reported at cycle 1, naming the device. 20-cycle runs and the
 * cycle time are in `pnpm bench:vmstate`.
 */
import type { VmConfig } from '@qmpkit/devices';
import { QEMU, QEMU_10, qemuSuite, REPO_CACHE_DIR } from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveQemuBinary } from '../binary.js';
import { guestConfig } from '../qemu.test-support.js';
import { tortureVm } from './torture.js';

const suite = qemuSuite({ binary: QEMU_10, prefix: 'qmpkit-torture-' });
let config: VmConfig;

beforeAll(async () => {
  const base = await guestConfig(suite.dir, { name: 'torture' });
  config = {
    ...base,
    netdevs: [{ id: 'net0', type: 'user' }],
    devices: [
      ...(base.devices ?? []),
      { driver: 'e1000', id: 'nic0', props: { netdev: 'net0', mac: '52:54:00:12:34:56' } },
    ],
  };
});

const counter = { chardev: 'ser0' } as const;

describe(`tortureVm ${QEMU.description} / ${QEMU_10.description}`, () => {
  it('7.2 → 7.2, 5 cycles: every cycle exact', async () => {
    const r = await tortureVm({ config, cycles: 5, counter, dirParent: suite.dir });
    expect(r.divergence).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.cycles.map((c) => c.cycle)).toEqual([1, 2, 3, 4, 5]);
    // The guest kept counting across cycles.
    const counts = r.cycles.map((c) => c.counter ?? 0);
    expect(counts.every((c, i) => i === 0 || c > (counts[i - 1] ?? 0))).toBe(true);
  }, 180_000);

  it('7.2 ⇄ 10.0, 5 cycles: every cycle exact, odd ones load on 10.0', async () => {
    const ten = await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR });
    const r = await tortureVm({
      config,
      cycles: 5,
      counter,
      restoreQemu: ten,
      dirParent: suite.dir,
    });
    expect(r.divergence).toBeUndefined();
    expect(r.cycles.map((c) => `${c.from.slice(0, 4)}→${c.to.slice(0, 4)}`)).toEqual([
      '7.2.→10.0',
      '10.0→7.2.',
      '7.2.→10.0',
      '10.0→7.2.',
      '7.2.→10.0',
    ]);
  }, 240_000);

  it('a restore with a wrong device set: cycle 1, the device named', async () => {
    const r = await tortureVm({
      config,
      cycles: 3,
      counter,
      restoreConfig: {
        ...config,
        devices: [...(config.devices ?? []), { driver: 'virtio-rng-pci', id: 'rng0', props: {} }],
      },
      dirParent: suite.dir,
    });
    expect(r.ok).toBe(false);
    expect(r.divergence).toMatchObject({ cycle: 1, device: 'rng0', what: 'pci' });
    expect(r.cycles).toEqual([]);
  }, 120_000);

  it('a restore missing a device: the load fails at cycle 1, naming what QEMU could not place', async () => {
    const r = await tortureVm({
      config,
      cycles: 3,
      counter,
      restoreConfig: { ...config, devices: (config.devices ?? []).filter((d) => d.id !== 'nic0') },
      dirParent: suite.dir,
    });
    expect(r.divergence).toMatchObject({ cycle: 1, what: 'load' });
    // RAM comes first in the stream: the NIC's ROM is the first thing 7.2 cannot place.
    expect(r.divergence?.device).toBe('0000:00:02.0/e1000.rom');
    expect(r.divergence?.message).toMatch(/Unknown ramblock "0000:00:02.0\/e1000.rom"/);
  }, 120_000);
});
