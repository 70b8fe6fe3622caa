import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isConfigValidationError, MiB, type VmConfig } from '@qmpkit/devices';
import { afterAll, describe, expect, it } from 'vitest';
import { isMachineOptionsError, isRunDirError } from './errors.js';
import { planProcess } from './process.js';
import { prepareRunDir } from './rundir.js';
import type { StoredLaunch } from './state.js';

const config: VmConfig = {
  machine: { type: 'pc' },
  accel: ['tcg'],
  memory: { size: 32 * MiB },
  qmp: { chardev: 'qmpkit-qmp' },
  chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
  netdevs: [{ id: 'n0', type: 'user' }],
  blockdevs: [
    { driver: 'file', 'node-name': 'f', filename: '/images/a,b.raw' },
    { driver: 'raw', 'node-name': 'd', file: 'f' },
  ],
  devices: [
    { driver: 'virtio-blk-pci', id: 'vd0', drive: 'd', bootindex: 1 },
    { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    { driver: 'virtio-net-pci', id: 'nic0', netdev: 'n0' },
  ],
};
const launch: StoredLaunch = {
  qemu: 'qemu-system-x86_64',
  consoles: [{ chardev: 'ser0', encoding: 'utf8' }],
  assemble: 'argv',
  extraArgs: ['-name', 'x'],
  launchTimeout: 1000,
};
const fds = { qmp: 3, consoles: new Map([['ser0', 4]]) };

function after(args: readonly string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

describe('planProcess', () => {
  it('puts QMP and the consoles on the inherited fds, and appends extraArgs', () => {
    const plan = planProcess(config, launch, {}, fds);
    expect(after(plan.args, '-chardev')).toEqual([
      'socket,id=qmpkit-qmp,fd=3',
      'socket,id=ser0,fd=4,server=off',
    ]);
    expect(after(plan.args, '-mon')).toEqual(['chardev=qmpkit-qmp,mode=control']);
    expect(plan.args.slice(-2)).toEqual(['-name', 'x']);
    expect(plan.args).not.toContain('-S');
    expect(plan.args).not.toContain('-incoming');
    expect(plan.steps).toEqual([]);
  });

  it('adds -S and -incoming defer for one process only', () => {
    const plan = planProcess(config, launch, { paused: true, incoming: true }, fds);
    expect(plan.args).toContain('-S');
    expect(after(plan.args, '-incoming')).toEqual(['defer']);
    expect(plan.cont).toBe(false);
  });

  it('assembles over QMP: -S, what cannot be hot-plugged on the command line, the rest as steps', () => {
    const plan = planProcess(config, { ...launch, assemble: 'qmp' }, {}, fds);
    expect(plan.args).toContain('-S');
    expect(after(plan.args, '-device')).toEqual([
      '{"driver":"isa-serial","id":"com1","chardev":"ser0"}',
    ]);
    expect(after(plan.args, '-blockdev')).toEqual([]);
    expect(plan.steps.map((s) => s.execute)).toEqual([
      'netdev_add',
      'blockdev-add',
      'blockdev-add',
      'device_add',
      'device_add',
    ]);
    expect(plan.bootDevicePlugged).toBe(true);
    expect(plan.cont).toBe(true);
    expect(planProcess(config, { ...launch, assemble: 'qmp' }, { paused: true }, fds).cont).toBe(
      false,
    );
  });

  it('validates the configuration and the consoles', () => {
    let error: unknown;
    try {
      planProcess(
        { ...config, devices: [{ driver: 'virtio-blk-pci', id: 'v', drive: 'x' }] },
        launch,
        {},
        fds,
      );
    } catch (e) {
      error = e;
    }
    expect(isConfigValidationError(error)).toBe(true);
    try {
      planProcess(
        config,
        { ...launch, consoles: [{ chardev: 'con9', encoding: 'utf8' }] },
        {},
        fds,
      );
    } catch (e) {
      error = e;
    }
    expect(isMachineOptionsError(error)).toBe(true);
    expect(String(error)).toContain("no chardev 'con9'");
  });
});

describe('prepareRunDir', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-machine-rundir-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates a private temporary directory, or the one named (never temporary)', async () => {
    const temp = await prepareRunDir({ runDirParent: root });
    expect(temp.temporary).toBe(true);
    expect(path.basename(temp.path)).toMatch(/^qmpkit-machine-/);
    expect(statSync(temp.path).mode & 0o777).toBe(0o700);
    const named = await prepareRunDir({ runDir: path.join(root, 'named') });
    expect(named).toEqual({ path: path.join(root, 'named'), temporary: false });
    expect(statSync(named.path).mode & 0o777).toBe(0o700);
    // An existing private directory is fine.
    expect((await prepareRunDir({ runDir: named.path })).temporary).toBe(false);
  });

  it('refuses directories open to others, files, and places it cannot create', async () => {
    const open = path.join(root, 'open');
    mkdirSync(open, { mode: 0o700 });
    const { chmodSync } = await import('node:fs');
    chmodSync(open, 0o750);
    const e1 = await prepareRunDir({ runDir: open }).catch((e: unknown) => e);
    expect(isRunDirError(e1) && e1.problem).toBe('insecure-mode');
    expect(String(e1)).toContain('mode 0750');
    const file = path.join(root, 'file');
    writeFileSync(file, '');
    const e2 = await prepareRunDir({ runDir: file }).catch((e: unknown) => e);
    expect(isRunDirError(e2) && e2.problem).toBe('not-a-directory');
    const e3 = await prepareRunDir({ runDir: path.join(file, 'sub') }).catch((e: unknown) => e);
    expect(isRunDirError(e3) && e3.problem).toBe('create-failed');
  });
});
