/**
 * Launching the tiny test guest under a real qemu-system-x86_64 7.2: readiness, consoles,
 * private files, accelerator fallback, stop/kill, and the errors of a launch that fails.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isConfigValidationError, type VmConfig } from '@qmpkit/devices';
import { parseCounterLine } from '@qmpkit/testguest';
import { launchQemu, QEMU, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { probeAccelerators } from './accel.js';
import { isMachineOptionsError, isQemuLaunchError, isRunDirError } from './errors.js';
import { launch } from './machine.js';
import { processAlive } from './proc.js';
import { guestConfig } from './qemu.test-support.js';
import { readState } from './state.js';

// Each test's machines are killed after it, then every QEMU whose pidfile lies under the
// suite's dir (and every pid a child reported), also after a failure or timeout.
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-machine-test-' });

let seq = 0;
const fresh = () => path.join(suite.dir, `case-${++seq}`);

function modeOf(file: string): number {
  return statSync(file).mode & 0o777;
}

describe('launch', () => {
  it('boots the test guest, reads its counter on the serial console and answers echo', async () => {
    const config = await guestConfig(suite.dir);
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), consoles: ['ser0'], runDirParent: suite.dir }),
    );
    expect(m.status).toBe('running');
    expect(m.accel).toBe('tcg');
    expect(m.qemuVersion).toMatchObject({
      major: QEMU.version?.major,
      minor: QEMU.version?.minor,
    });
    expect(processAlive(m.pid)).toBe(true);
    // Ready means negotiated: commands work at once.
    expect((await m.qmp.execute('query-status')).status).toBe('running');

    const serial = m.console('ser0');
    const hello = await serial.expect(/G=([0-9A-F]{8})\r\n/, { timeout: 20_000 });
    expect(hello.groups[0]).toBe('00000001');
    const first = await serial.expect(/C=[0-9A-F]{8}\r\n/, { timeout: 20_000 });
    const second = await serial.expect(/C=[0-9A-F]{8}\r\n/, { timeout: 20_000 });
    const a = parseCounterLine(first.match) ?? 0;
    expect(a).toBeGreaterThanOrEqual(1);
    expect(parseCounterLine(second.match)).toBe(a + 1);
    await serial.write('x');
    await serial.expect('E=x', { timeout: 10_000 });

    // Private files: a 0700 run directory, a 0600 state file, no socket files anywhere.
    expect(modeOf(m.runDir)).toBe(0o700);
    const stateFile = m.stateFile ?? '';
    expect(path.dirname(stateFile)).toBe(m.runDir);
    expect(modeOf(stateFile)).toBe(0o600);
    for (const name of readdirSync(m.runDir)) {
      const info = statSync(path.join(m.runDir, name));
      expect(info.isSocket()).toBe(false);
      expect(info.mode & 0o077).toBe(0);
    }
    // QMP and the console are socketpairs QEMU inherited (fds 3 and 4 of the child).
    for (const fd of [3, 4]) {
      const target = spawnSync('readlink', [`/proc/${m.pid}/fd/${fd}`], { encoding: 'utf8' });
      if (target.status === 0) expect(target.stdout).toMatch(/^socket:/);
    }
    const state = await readState(stateFile);
    expect(state.runtime).toMatchObject({
      status: 'running',
      pid: m.pid,
      accel: 'tcg',
      runDir: m.runDir,
      qemuVersion: { major: QEMU.version?.major, minor: QEMU.version?.minor },
    });
    expect(state.launch.consoles).toEqual([{ chardev: 'ser0', encoding: 'utf8' }]);
    expect(state.config).toEqual(m.config);

    const runDir = m.runDir;
    const exit = await m.stop();
    expect(exit.code).toBe(0);
    expect(m.status).toBe('stopped');
    expect(processAlive(m.pid)).toBe(false);
    expect(existsSync(runDir)).toBe(false);
  });

  it('without an accelerator list passes what the probe found usable and reports what it got', async () => {
    const { accel: _tcg, ...config } = await guestConfig(suite.dir);
    const m = suite.adopt(await launch(config, { ...launchQemu(), runDirParent: suite.dir }));
    // Only what works here is passed (no `-accel kvm` without a usable /dev/kvm, so no
    // fallback warning on stderr), as `probeAccelerators` reports it.
    const probe = await probeAccelerators();
    expect(probe.usable.length).toBeGreaterThan(0);
    expect(m.argv.join(' ')).toContain(probe.usable.map((a) => `-accel ${a}`).join(' '));
    expect(m.config.accel).toEqual(probe.usable);
    const kvm = await m.qmp.execute('query-kvm');
    expect(m.accel).toBe(kvm.enabled ? 'kvm' : 'tcg');
    expect(m.accel).toBe(probe.usable[0]);
    await m.stop();
    // A list whose first entry fails falls back as well (xen is not available here).
    const fallback = suite.adopt(
      await launch({ ...config, accel: ['xen', 'tcg'] }, { runDirParent: suite.dir }),
    );
    expect(fallback.accel).toBe('tcg');
    expect(fallback.stderr()).toMatch(/xen/);
    await fallback.stop();
  });

  it('passes hostile strings as arguments, never through a shell', async () => {
    const marker = path.join(suite.dir, 'shell-ran');
    const name = `x;touch ${marker};$(touch ${marker})\`touch ${marker}\``;
    const config: VmConfig = { ...(await guestConfig(suite.dir)), staticArgs: ['-name', name] };
    const m = suite.adopt(await launch(config, { ...launchQemu(), runDirParent: suite.dir }));
    expect(await m.qmp.execute('query-name')).toEqual({ name });
    expect(m.argv).toContain(name);
    await m.stop();
    expect(existsSync(marker)).toBe(false);
  });

  it('kill() ends QEMU with SIGKILL', async () => {
    const m = suite.adopt(
      await launch(await guestConfig(suite.dir), { ...launchQemu(), runDirParent: suite.dir }),
    );
    const exit = await m.kill();
    expect(exit.signal).toBe('SIGKILL');
    expect(m.status).toBe('stopped');
  });
});

describe('launch failures', () => {
  it('maps an unknown device driver to a QemuLaunchError with QEMU’s stderr, exit code and argv', async () => {
    const config = await guestConfig(suite.dir);
    const bad: VmConfig = {
      ...config,
      devices: [...(config.devices ?? []), { driver: 'no-such-device', id: 'nope', props: {} }],
    };
    const parent = fresh();
    mkdirSync(parent, { mode: 0o700 });
    const error = await launch(bad, { ...launchQemu(), runDirParent: parent }).catch(
      (e: unknown) => e,
    );
    expect(isQemuLaunchError(error)).toBe(true);
    if (!isQemuLaunchError(error)) return;
    expect(error.reason).toBe('exited');
    expect(error.exitCode).toBe(1);
    expect(error.stderr).toContain("'no-such-device' is not a valid device model name");
    expect(error.message).toContain("'no-such-device' is not a valid device model name");
    expect(error.argv[0]).toMatch(/qemu-system-x86_64$/);
    expect(error.argv).toContain('{"driver":"no-such-device","id":"nope"}');
    // The run directory it created is gone again.
    expect(readdirSync(parent)).toEqual([]);
  });

  it('catches a dangling drive reference and duplicate node names before anything starts', async () => {
    const config = await guestConfig(suite.dir);
    const parent = fresh();
    mkdirSync(parent, { mode: 0o700 });
    const dangling: VmConfig = {
      ...config,
      devices: [{ driver: 'virtio-blk-pci', id: 'vd9', drive: 'missing-node' }],
    };
    const e1 = await launch(dangling, { ...launchQemu(), runDirParent: parent }).catch(
      (e: unknown) => e,
    );
    expect(isConfigValidationError(e1)).toBe(true);
    expect(String(e1)).toContain('missing-node');
    const duplicate: VmConfig = {
      ...config,
      blockdevs: [...(config.blockdevs ?? []), { driver: 'null-co', 'node-name': 'boot' }],
    };
    const e2 = await launch(duplicate, { ...launchQemu(), runDirParent: parent }).catch(
      (e: unknown) => e,
    );
    expect(isConfigValidationError(e2)).toBe(true);
    if (isConfigValidationError(e2))
      expect(e2.problems.map((p) => p.code)).toContain('duplicate-id');
    // Nothing was created, nothing spawned.
    expect(readdirSync(parent)).toEqual([]);
    const e3 = await launch(config, {
      ...launchQemu(),
      consoles: ['nope'],
      runDirParent: parent,
    }).catch((e: unknown) => e);
    expect(isMachineOptionsError(e3)).toBe(true);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('reports a missing QEMU binary', async () => {
    const config = await guestConfig(suite.dir);
    for (const qemu of ['qemu-system-does-not-exist', path.join(suite.dir, 'no', 'qemu')]) {
      const error = await launch(config, { qemu, runDirParent: suite.dir }).catch(
        (e: unknown) => e,
      );
      expect(isQemuLaunchError(error)).toBe(true);
      if (isQemuLaunchError(error)) {
        expect(error.reason).toBe('not-found');
        expect(error.message).toContain(qemu);
        expect(error.argv[0]).toBe(qemu);
      }
    }
  });

  it('refuses a run directory that is not writable or is open to others', async () => {
    const config = await guestConfig(suite.dir);
    const locked = fresh();
    mkdirSync(locked, { mode: 0o700 });
    let unlock = () => {};
    if (process.getuid?.() === 0) {
      // Root ignores mode bits; an immutable directory stops root too.
      const r = spawnSync('chattr', ['+i', locked]);
      if (r.status !== 0) throw new Error(`chattr +i failed: ${r.stderr}`);
      unlock = () => spawnSync('chattr', ['-i', locked]);
    } else {
      chmodSync(locked, 0o500);
      unlock = () => chmodSync(locked, 0o700);
    }
    try {
      const e1 = await launch(config, { ...launchQemu(), runDir: locked }).catch((e: unknown) => e);
      expect(isRunDirError(e1) && e1.problem).toBe('not-writable');
      const e2 = await launch(config, { ...launchQemu(), runDirParent: locked }).catch(
        (e: unknown) => e,
      );
      expect(isRunDirError(e2) && e2.problem).toBe('not-writable');
    } finally {
      unlock();
    }
    const open = fresh();
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    const e3 = await launch(config, { ...launchQemu(), runDir: open }).catch((e: unknown) => e);
    expect(isRunDirError(e3) && e3.problem).toBe('insecure-mode');
    const file = path.join(suite.dir, 'a-file');
    writeFileSync(file, '');
    const e4 = await launch(config, { ...launchQemu(), runDir: file }).catch((e: unknown) => e);
    expect(isRunDirError(e4) && e4.problem).toBe('not-a-directory');
  });
});
