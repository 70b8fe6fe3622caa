/**
 * The Linux test guest booted through UEFI (Debian's OVMF: code read-only in pflash0, a raw
 * copy of the variable store writable in pflash1), on q35 with a qcow2 ext4 data disk — the
 * seed's headline case: internal snapshots through `snapshot-save` jobs save and load with
 * the raw varstore left out of `devices`, HMP `savevm` is refused with the reason (the raw,
 * writable pflash1), and external snapshots work too. One VM for the file, its tests in order.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import {
  AGENT_PORT,
  AGENT_PORT_ID,
  buildLinuxGuest,
  efiKernel,
  fetchOvmf,
  ovmfVarsCopy,
  TICK_PREFIX,
} from '@qmpkit/testguest';
import {
  launchQemu,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
  TEST_ACCEL,
} from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import {
  LINUX_READY,
  linuxGuestSkipReason,
  makeExt4,
  runHost,
} from './linux-guest.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-uefi-' });
const skip =
  qemuSkipReason() ??
  linuxGuestSkipReason() ??
  (process.env.CI !== 'true' && !existsSync(path.join(REPO_CACHE_DIR, 'ovmf', 'bookworm'))
    ? 'OVMF is not in the cache; CI fetches it (fetchOvmf)'
    : undefined);
const TICK = new RegExp(`${TICK_PREFIX} (\\d+)\\r?\\n`);

let m: Machine;
let snaps: Snapshots;
let bootMs = 0;

async function uefiConfig(dir: string): Promise<VmConfig> {
  const guest = await buildLinuxGuest({ cacheDir: REPO_CACHE_DIR });
  const ovmf = await fetchOvmf({ cacheDir: REPO_CACHE_DIR });
  const vars = await ovmfVarsCopy(ovmf, path.join(dir, 'OVMF_VARS.fd'));
  const raw = path.join(dir, 'data.raw');
  await makeExt4(raw, 16);
  const data = path.join(dir, 'data.qcow2');
  const convert = await runHost('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, data]);
  if (convert.code !== 0) throw new Error(`qemu-img convert: ${convert.stderr}`);
  return {
    machine: { type: 'pc-q35-7.2', pflash0: 'ovmf-code', pflash1: 'ovmf-vars' },
    accel: [...TEST_ACCEL],
    // 256 MiB: with 128 MiB this OVMF stopped with an x64 exception before the kernel ran.
    memory: { size: 256 * MiB },
    chardevs: [
      { id: 'ser0', backend: { type: 'null', data: {} } },
      {
        id: 'qga0',
        backend: {
          type: 'socket',
          data: {
            addr: { type: 'unix', data: { path: path.join(dir, 'qga.sock') } },
            server: true,
            wait: false,
          },
        },
      },
    ],
    blockdevs: [
      { driver: 'file', 'node-name': 'ovmf-code-file', filename: ovmf.code, 'read-only': true },
      { driver: 'raw', 'node-name': 'ovmf-code', file: 'ovmf-code-file', 'read-only': true },
      { driver: 'file', 'node-name': 'ovmf-vars-file', filename: vars },
      { driver: 'raw', 'node-name': 'ovmf-vars', file: 'ovmf-vars-file' },
      { driver: 'file', 'node-name': 'data-file', filename: data },
      { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
    ],
    devices: [
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
      { driver: 'virtio-serial-pci', id: 'vser0' },
      {
        driver: 'virtserialport',
        id: AGENT_PORT_ID,
        bus: 'vser0.0',
        chardev: 'qga0',
        name: AGENT_PORT,
      },
      { driver: 'virtio-blk-pci', id: 'vda', drive: 'data' },
    ],
    // OVMF loads the kernel (the EFI-stub vmlinuz) and initramfs QEMU passes through fw_cfg.
    staticArgs: [
      '-kernel',
      await efiKernel(guest, { cacheDir: REPO_CACHE_DIR }),
      '-initrd',
      guest.initrd,
      '-append',
      guest.append,
    ],
  };
}

/** The next tick on COM1 (consumed). */
async function nextTick(): Promise<number> {
  return Number((await m.console('ser0').expect(TICK, { timeout: 120_000 })).groups[0]);
}

beforeAll(async () => {
  if (skip !== undefined) return;
  const config = await uefiConfig(suite.dir);
  const started = performance.now();
  m = suite.adopt(
    await launch(config, { ...launchQemu(), consoles: ['ser0'], runDirParent: suite.dir }),
  );
  await m.console('ser0').expect(LINUX_READY, { timeout: 600_000 });
  bootMs = performance.now() - started;
  snaps = await openSnapshots(m, { dir: path.join(suite.dir, 'store'), strategy: 'internal-jobs' });
}, 900_000);

describe.skipIf(skip !== undefined)(`UEFI (OVMF)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('boots the Linux guest through OVMF', async (ctx) => {
    ctx.annotate?.(`UEFI boot to READY: ${(bootMs / 1000).toFixed(1)} s`);
    const firmware = await m.qmp.execute('query-named-block-nodes', { flat: true });
    expect(firmware.find((n) => n['node-name'] === 'ovmf-code')?.ro).toBe(true);
    expect(await nextTick()).toBeGreaterThan(0);
  });

  it('internal snapshot-save: the raw varstore stays out of the devices; save and load continue the guest', async () => {
    const consumed = await nextTick();
    const saved = await snaps.save('jobs');
    expect(snaps.store.find('jobs')?.devices).toEqual(['data']);
    expect(saved.snapshot.strategy).toBe('internal-jobs');
    await nextTick();
    await snaps.load('jobs');
    const after = [await nextTick(), await nextTick()];
    expect(after).toEqual([consumed + 1, consumed + 2]);
  });

  it('HMP savevm is refused because of the raw, writable pflash1', async (ctx) => {
    const error = await snaps
      .strategy('internal-hmp')
      .save('hmp')
      .result.catch((e: unknown) => e);
    expect(error).toMatchObject({
      name: expect.stringMatching(/^Snapshot(Unsupported|Qemu)Error$/),
    });
    expect((error as Error).message).toMatch(/pflash1|ovmf-vars/);
    ctx.annotate?.(`refused: ${(error as Error).message}`);
    expect(snaps.store.find('hmp')).toBeUndefined();
    // QEMU's own answer (naming pflash1's node), which the strategy's check spares the caller.
    const qemu = await m.qmp.hmp('savevm direct');
    expect(qemu).toMatch(/Device 'ovmf-vars' is writable but does not support snapshots/);
    expect(await m.qmp.hmp('info snapshots')).not.toMatch(/direct/);
    await nextTick();
  });

  it('external snapshots save and load too', async () => {
    await snaps.delete('jobs');
    const ext = snaps.strategy('external');
    const consumed = await nextTick();
    await ext.save('ext');
    await nextTick();
    await ext.load('ext');
    expect([await nextTick(), await nextTick()]).toEqual([consumed + 1, consumed + 2]);
  });
});
