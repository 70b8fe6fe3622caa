/**
 * Paths a real QEMU rarely takes, against fake "QEMU" processes: @qmpkit/fake-qmp's process
 * mode (`qmpkit-fake-qemu`), which reads QEMU's command line, serves QMP on the inherited
 * monitor descriptor like QEMU 7.2 and misbehaves on purpose when told — stop()'s escalation
 * (quit → SIGTERM → SIGKILL), a QEMU that never greets, and hot-plug steps that fail half-way. No real QEMU needed;
 * every process here is started by the test and ended by its pid.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQemuBinary } from './binary.js';
import { isMachineNotRunningError, isMachinePlugError, isQemuLaunchError } from './errors.js';
import { writeFakeQemu } from './fake-qemu.test-support.js';
import { launch } from './machine.js';
import { processAlive } from './proc.js';
import { readState } from './state.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-machine-stop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The fake QEMU executable: a Node script that runs fake-qmp's process mode from source
 * (the workspace is not built in tests; its env loads TypeScript). Switches:
 * `--fake-ignore-quit`, `--fake-ignore-term`, `--fake-fail=COMMAND`, `--fake-no-greeting`.
 */
const { path: fake, env } = writeFakeQemu(dir);

// launch checks its binary with `--version` (another slow start of the fake, cached per
// file): do it once here, so each test pays one start.
beforeAll(async () => {
  await resolveQemuBinary(fake, { env });
}, 20_000);

const config: VmConfig = {
  machine: { type: 'pc' },
  accel: ['tcg'],
  memory: { size: 32 * MiB },
  blockdevs: [{ driver: 'null-co', 'node-name': 'n0' }],
  devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'n0' }],
};

async function start(flags: string[]) {
  return launch(config, {
    qemu: fake,
    extraArgs: flags,
    runDirParent: dir,
    env,
    logger: { warn: () => {} },
  });
}

describe('stop', () => {
  it('ends a QEMU that obeys quit with quit', async () => {
    const m = await start([]);
    // The greeting came from the fake (it imitates QEMU 7.2).
    expect(m.qemuVersion).toMatchObject({ major: 7, minor: 2 });
    const exit = await m.stop({ quitTimeout: 2000, termTimeout: 2000 });
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('sends SIGTERM when quit does not end it in time', async () => {
    const m = await start(['--fake-ignore-quit']);
    const started = performance.now();
    const exit = await m.stop({ quitTimeout: 300, termTimeout: 2000 });
    expect(exit.signal).toBe('SIGTERM');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(processAlive(m.pid)).toBe(false);
  });

  it('sends SIGKILL when SIGTERM does not end it either', async () => {
    const m = await start(['--fake-ignore-quit', '--fake-ignore-term']);
    const exit = await m.stop({ quitTimeout: 200, termTimeout: 200 });
    expect(exit.signal).toBe('SIGKILL');
    expect(m.status).toBe('stopped');
    expect(processAlive(m.pid)).toBe(false);
  });
});

describe('launch', () => {
  it('kills a QEMU that never sends a greeting after launchTimeout', async () => {
    // The fake holds its monitor open and never greets: however fast or slow it starts, the
    // launch deadline is the only way this launch can end.
    const error = await launch(config, {
      qemu: fake,
      extraArgs: ['--fake-no-greeting'],
      launchTimeout: 500,
      runDirParent: dir,
      env,
      logger: { warn: () => {} },
    }).catch((e: unknown) => e);
    expect(isQemuLaunchError(error)).toBe(true);
    if (!isQemuLaunchError(error)) return;
    expect(error.reason).toBe('timeout');
    expect(error.message).toMatch(
      /no QMP greeting from QEMU \(pid \d+\) within 500 ms; it was killed/,
    );
    expect(error.signal).toBe('SIGKILL');
    expect(error.exitCode).toBeNull();
    // launch waited for the exit before rejecting: the process is gone, not just signalled.
    const pid = Number(/\(pid (\d+)\)/.exec(error.message)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(processAlive(pid)).toBe(false);
  });
});

describe('hot-plug steps that fail', () => {
  it('unplug: the model drops what was removed before the failing step, and says so', async () => {
    const m = await start(['--fake-fail=blockdev-del']);
    try {
      const error = await m.unplug({ devices: ['vd0'] }).catch((e: unknown) => e);
      expect(isMachinePlugError(error)).toBe(true);
      if (!isMachinePlugError(error)) return;
      expect(error.operation).toBe('unplug');
      expect(error.step).toEqual({ execute: 'blockdev-del', arguments: { 'node-name': 'n0' } });
      expect(error.completed.map((s) => s.execute)).toEqual(['device_del']);
      expect(error.message).toContain('refused by the fake');
      // vd0 is gone in QEMU, n0 is not: the model says the same, and so does the file.
      expect(m.config.devices).toEqual([]);
      expect(m.config.blockdevs?.map((n) => n['node-name'])).toEqual(['n0']);
      expect((await readState(m.stateFile ?? '')).config).toEqual(m.config);
    } finally {
      await m.kill();
    }
  });

  it('plug: when the undo fails too, the error says the rollback failed', async () => {
    const m = await start(['--fake-fail=device_add', '--fake-fail=blockdev-del']);
    try {
      const before = m.config;
      const error = await m
        .plug({
          blockdevs: [{ driver: 'null-co', 'node-name': 'n1' }],
          devices: [{ driver: 'virtio-blk-pci', id: 'vd1', drive: 'n1' }],
        })
        .catch((e: unknown) => e);
      expect(isMachinePlugError(error)).toBe(true);
      if (!isMachinePlugError(error)) return;
      expect(error.step.execute).toBe('device_add');
      expect(error.rolledBack).toBe(false);
      expect(error.undoErrors).toHaveLength(1);
      expect(error.message).toContain('undoing the 1 step(s) before it failed too');
      expect(m.config).toBe(before);
    } finally {
      await m.kill();
    }
  });

  it('refuses QMP work once QEMU is gone', async () => {
    const m = await start([]);
    await m.stop();
    const error = await m.plug({ netdevs: [{ id: 'x', type: 'user' }] }).catch((e: unknown) => e);
    expect(isMachineNotRunningError(error)).toBe(true);
  });
});
