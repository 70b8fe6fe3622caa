/**
 * Disk-only snapshots of the Linux test guest, frozen through its real qemu-ga while a loop
 * in the guest writes files to its ext4 disk; one VM for the file (128 MiB, TCG), its tests
 * in order:
 * - N frozen snapshots (`QMPKIT_FREEZE_TRIALS`, default 3; `pnpm bench:freeze` runs 20):
 *   each snapshot's disk, read from its overlay chain, passes `e2fsck -fn` and holds only
 *   complete files;
 * - the overlay step held past `quiesceTimeout` (a gate opened only after the save failed):
 *   frozen inside, `guest-fsfreeze-status` says thawed afterwards, nothing recorded;
 * - a virtio console (`/dev/hvc0`) across a full external save/load: the counter it prints
 *   continues with no gap or repeat, unread text at the save point restored;
 * - the default hook (the VM's own agent socket, found in its configuration);
 * - loading a disk-only snapshot: a cold boot whose ext4 mounts clean.
 */
import path from 'node:path';
import { GuestAgent } from '@qmpkit/guest-agent';
import { launch, type Machine } from '@qmpkit/machine';
import { launchQemu, qemuSkipReason, qemuSuite } from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import {
  checkDisk,
  LINUX_READY,
  linuxGuestSkipReason,
  linuxVmConfig,
  makeExt4,
  startWriter,
  writerIndex,
  writerPast,
} from './linux-guest.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-freeze-' });
const skip = qemuSkipReason() ?? linuxGuestSkipReason();
const TRIALS = Number.parseInt(process.env.QMPKIT_FREEZE_TRIALS ?? '3', 10);
const HVC = /HVC (\d+)\r?\n/;

let m: Machine;
let agent: GuestAgent;
let snaps: Snapshots;

const agentSocket = () => path.join(suite.dir, 'qga.sock');

beforeAll(async () => {
  if (skip !== undefined) return;
  const data = path.join(suite.dir, 'data.img');
  await makeExt4(data, 32);
  const config = await linuxVmConfig({ dir: suite.dir, dataDisk: data, virtioConsole: true });
  m = suite.adopt(
    await launch(config, { ...launchQemu(), consoles: ['ser0', 'hvc'], runDirParent: suite.dir }),
  );
  await m.console('ser0').expect(LINUX_READY, { timeout: 300_000 });
  agent = new GuestAgent({ socket: agentSocket() });
  await agent.waitForAgent({ timeout: 120_000 });
  await startWriter(agent);
  snaps = await openSnapshots(m, { dir: path.join(suite.dir, 'store'), strategy: 'external' });
}, 600_000);

afterAll(async () => {
  await agent?.close();
});

describe.skipIf(skip !== undefined)(`Linux guest${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it(`${TRIALS} frozen disk-only snapshots while the guest writes: each passes e2fsck -fn with only complete files`, async (ctx) => {
    let index = await writerPast(agent, 0);
    const saved: { name: string; layer: string; index: number; ms: number }[] = [];
    for (let t = 1; t <= TRIALS; t++) {
      index = await writerPast(agent, index);
      const name = `frozen-${t}`;
      const result = await snaps.save(name, { diskOnly: true, quiesce: agent });
      expect(result.snapshot.consistency).toBe('filesystem');
      saved.push({
        name,
        layer: result.snapshot.layers[0] ?? '',
        index,
        ms:
          (result.timings.phases.freeze ?? 0) +
          (result.timings.phases.switch ?? 0) +
          (result.timings.phases.thaw ?? 0),
      });
    }
    // The writer kept going through every freeze.
    expect(await writerIndex(agent)).toBeGreaterThan(index);
    let previous = 0;
    for (const s of saved) {
      const format = s.layer.endsWith('data.img') ? 'raw' : 'qcow2';
      const check = await checkDisk(s.layer, format);
      expect(check.fsckCode, `${s.name}: ${check.fsckOutput}`).toBe(0);
      expect(check.incomplete, s.name).toEqual([]);
      // Writes between snapshots are in them: each holds a later file than the one before.
      expect(check.last, s.name).toBeGreaterThanOrEqual(s.index);
      expect(check.last, s.name).toBeGreaterThan(previous);
      expect(check.files, s.name).toBeGreaterThan(0);
      previous = check.last;
    }
    ctx.annotate?.(`freeze+switch+thaw ms: ${saved.map((s) => s.ms.toFixed(0)).join(', ')}`);
  }, 600_000);

  it('the overlay step held past the deadline: thawed (guest-fsfreeze-status), a typed error, nothing recorded', async () => {
    const before = snaps.store.snapshots().length;
    let inside: string | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const error = await snaps
      .save('held', {
        diskOnly: true,
        quiesce: agent,
        quiesceTimeout: 1000,
        onFrozen: async () => {
          // Sent before the deadline's thaw can be: the agent answers in order.
          inside = await agent.freezeStatus();
          await gate; // opened only after the save has failed
        },
      })
      .result.catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SnapshotQuiesceError', reason: 'timeout', thawed: true });
    expect(inside).toBe('frozen');
    expect(await agent.freezeStatus()).toBe('thawed');
    release();
    expect(snaps.store.snapshots()).toHaveLength(before);
    // The guest writes again.
    await writerPast(agent, await writerIndex(agent));
  }, 120_000);

  it('virtio console across a full external save and load: the counter continues, unread text restored', async () => {
    const started = await agent.exec([
      '/bin/sh',
      '-c',
      '(n=0; while :; do n=$((n+1)); echo "HVC $n" > /dev/hvc0; sleep 0.1; done) </dev/null >/dev/null 2>&1 &',
    ]);
    expect(started.exitcode).toBe(0);
    const hvc = m.console('hvc');
    const first = Number((await hvc.expect(HVC, { timeout: 60_000 })).groups[0]);
    const consumed = Number((await hvc.expect(HVC, { timeout: 60_000 })).groups[0]);
    expect(consumed).toBe(first + 1);
    await snaps.save('full');
    // Lines after the save point: the load takes them back.
    const after = Number((await hvc.expect(HVC, { timeout: 60_000 })).groups[0]);
    expect(after).toBeGreaterThan(consumed);
    await snaps.load('full');
    const seen: number[] = [];
    for (let i = 0; i < 5; i++)
      seen.push(Number((await hvc.expect(HVC, { timeout: 60_000 })).groups[0]));
    expect(seen).toEqual([1, 2, 3, 4, 5].map((k) => consumed + k));
    // The agent reconnects to the restored guest.
    await agent.waitForAgent({ timeout: 60_000 });
  }, 300_000);

  it('default hook: the agent of the VM’s configuration freezes it', async () => {
    // The chardev serves one client: ours steps aside for the snapshot's own.
    await agent.close();
    const result = await snaps.save('default-hook', { diskOnly: true, requireQuiesce: true });
    expect(result.snapshot.consistency).toBe('filesystem');
    agent = new GuestAgent({ socket: agentSocket() });
    expect(await agent.freezeStatus()).toBe('thawed');
    const check = await checkDisk(result.snapshot.layers[0] ?? '', 'qcow2');
    expect(check.fsckCode, check.fsckOutput).toBe(0);
  }, 120_000);

  it('loading a disk-only snapshot boots the guest cold from it; its ext4 mounts clean', async () => {
    const pid = m.pid;
    await snaps.load('frozen-1');
    expect(m.pid).not.toBe(pid);
    await m.console('ser0').expect(LINUX_READY, { timeout: 300_000 });
    await agent.waitForAgent({ timeout: 120_000 });
    const mounted = await agent.exec([
      '/bin/sh',
      '-c',
      'grep " /data " /proc/mounts; cat /data/w/last',
    ]);
    expect(mounted.stdout).toMatch(/^\/dev\/vda \/data ext4 rw/m);
    const check = await checkDisk(snaps.store.find('frozen-1')?.layers[0] ?? '', 'raw');
    expect(mounted.stdout.trim().split('\n').at(-1)).toBe(String(check.last));
  }, 600_000);
});
