/**
 * `load` refuses a snapshot taken with another device configuration, for every strategy, on
 * QEMU 7.2: the VM (same machine type and memory, one serial port more) is left running
 * untouched, and the snapshot loads again once the configuration matches.
 */
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isSnapshotMismatchError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

/** `config` with a second ISA serial port (COM2 on a null chardev). */
function withCom2(config: VmConfig): VmConfig {
  return {
    ...config,
    chardevs: [...(config.chardevs ?? []), { id: 'ser1', backend: { type: 'null', data: {} } }],
    devices: [...(config.devices ?? []), { driver: 'isa-serial', id: 'com2', chardev: 'ser1' }],
  };
}

describe.each<StrategyKind>(['external', 'internal-jobs', 'internal-hmp'])('%s', (kind) => {
  it('refuses a snapshot of another device configuration, leaving the VM running', async () => {
    const label = `devcfg-${kind}`;
    const config = await guestConfig(suite.dir, { name: label });
    const m = suite.adopt(await startGuest(suite.dir, config));
    const snaps = await openSnapshots(m, { dir: path.join(suite.dir, label), strategy: kind });
    const at = await nextCounter(m);
    await snaps.save('before');
    const without = m.config;
    await m.restart(withCom2(without));
    await nextCounter(m);
    const pid = m.pid;

    const error = await snaps.load('before').result.catch((e: unknown) => e);
    expect(isSnapshotMismatchError(error)).toBe(true);
    if (!isSnapshotMismatchError(error)) return;
    expect(error.field).toBe('device-config');
    expect(error.snapshot).toBe('before');
    expect(error.message).toMatch(/^snapshot 'before' does not fit this VM: device-config/);
    // Untouched: same QEMU, running, counting.
    expect(m.pid).toBe(pid);
    expect((await m.qmp.execute('query-status')).running).toBe(true);
    await nextCounter(m);

    // Back on the snapshot's device configuration, it loads.
    await m.restart(without);
    await snaps.load('before');
    const next = await nextCounter(m);
    expect(next).toBeGreaterThan(at);
    expect(next).toBeLessThanOrEqual(at + 3);
  });
});
