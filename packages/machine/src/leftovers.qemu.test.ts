/**
 * No QEMU is ever left running unknown (issue #12 §1), against a real QEMU: a launch killed
 * right after the spawn relaunches (and its QEMU is ended), one manager per run directory,
 * temp files of a killed state write are removed, leaked clusters are reclaimed after an
 * unclean end, and every QEMU carries its run directory in its command line.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { runQemuImg } from '@qmpkit/testguest';
import { launchQemu, qemuSuite, spawnNodeChild } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { firstLine, startCrashChild } from './crash.test-support.js';
import { isRunDirLockedError } from './errors.js';
import { launch, Machine } from './machine.js';
import { processAlive } from './proc.js';
import { guestConfig } from './qemu.test-support.js';
import { repairLeaks } from './qemu-img.js';
import { readState } from './state.js';
import { runDirProcesses } from './tracking.js';

// Each test's machines are killed after it, then every QEMU whose pidfile lies under the
// suite's dir (and every pid a child reported), also after a failure or timeout.
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-machine-test-' });

const COUNTER = /C=([0-9A-F]{8})\r\n/;
const quiet = { warn: () => {} };

function child(script: string, args: string[]) {
  return spawnNodeChild(path.join(import.meta.dirname, script), [...args]);
}

/** Makes one leaked cluster in a fresh qcow2 image: data written, then its L2 entry cleared. */
async function imageWithLeak(file: string): Promise<void> {
  await runQemuImg(['create', '-q', '-f', 'qcow2', file, '8M']);
  await new Promise<void>((resolve, reject) => {
    const io = spawn(suite.binary.io, ['-f', 'qcow2', '-c', 'write 0 64k', file], {
      stdio: 'ignore',
    });
    io.once('error', reject);
    io.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`qemu-io: ${code}`))));
  });
  const handle = await open(file, 'r+');
  try {
    const header = Buffer.alloc(48);
    await handle.read(header, 0, 48, 0);
    const l1 = Number(header.readBigUInt64BE(40));
    const entry = Buffer.alloc(8);
    await handle.read(entry, 0, 8, l1);
    const l2 = Number(entry.readBigUInt64BE(0) & 0x00ff_ffff_ffff_fe00n);
    await handle.write(Buffer.alloc(8), 0, 8, l2);
  } finally {
    await handle.close();
  }
}

describe('a launch killed after the spawn', () => {
  it('relaunches from the state file written before the spawn and ends the half-started QEMU', async () => {
    const dir = path.join(suite.dir, 'launch-kill');
    mkdirSync(dir, { mode: 0o700 });
    const c = child('launch-child.test-support.ts', [dir]);
    const { line, exit } = await firstLine<{ qemuPid: number; stateFile: string }>(c);
    suite.trackPid(line.qemuPid);
    expect(await exit).toBe('SIGKILL');
    // Before the fix there was no state file yet (`StateFileError … ENOENT`) and the QEMU
    // kept running with the image's write lock.
    const state = await readState(line.stateFile);
    expect(['starting', 'running']).toContain(state.runtime.status);
    const m = suite.adopt(await Machine.relaunch(line.stateFile, { logger: quiet }));
    expect(processAlive(line.qemuPid)).toBe(false);
    expect((await runDirProcesses(m.runDir)).map((p) => p.pid)).toEqual([m.pid]);
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    await m.stop();
    expect(await runDirProcesses(m.runDir)).toEqual([]);
  }, 60_000);
  it('ends a leftover QEMU with SIGTERM first, so its persistent dirty bitmaps reach the image', async () => {
    const dir = path.join(suite.dir, 'orphan-bitmap');
    mkdirSync(dir, { mode: 0o700 });
    const { child: c, exit, ...line } = await startCrashChild(suite, dir, 'bitmap');
    c.kill('SIGKILL');
    expect(await exit).toBe('SIGKILL');
    expect(processAlive(line.qemuPid)).toBe(true);
    const warnings: string[] = [];
    const m = suite.adopt(
      await Machine.relaunch(line.stateFile, { logger: { warn: (w) => warnings.push(w) } }),
    );
    expect(processAlive(line.qemuPid)).toBe(false);
    expect(warnings).toContainEqual(
      expect.stringMatching(
        new RegExp(`ended a leftover QEMU .*\\(pid ${line.qemuPid}, vm, SIGTERM\\)`),
      ),
    );
    // QEMU stores a persistent bitmap in the qcow2 only when it closes the image: after a
    // SIGKILL the relaunched QEMU finds no b0 at all (as before this change).
    const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
    const data = nodes.find((n) => n['node-name'] === 'data');
    expect(
      data?.['dirty-bitmaps']?.map((b) => [b.name, b.persistent, b.inconsistent ?? false]),
    ).toEqual([['b0', true, false]]);
    await m.stop();
  }, 60_000);
});

describe('one manager per run directory', () => {
  it('refuses a second manager with the holder pid, also another process; force takes over', async () => {
    const dir = path.join(suite.dir, 'lock');
    mkdirSync(dir, { mode: 0o700 });
    const { child: c, exit, ...line } = await startCrashChild(suite, dir, 'nic');
    const config = await guestConfig(suite.dir, { name: 'lock2' });
    // Launching into the same run directory and relaunching its state both name the holder.
    const e1 = await launch(config, {
      ...launchQemu(),
      runDir: path.join(dir, 'run'),
      logger: quiet,
    }).catch((e: unknown) => e);
    expect(isRunDirLockedError(e1) && e1.holderPid).toBe(c.pid);
    const e2 = await Machine.relaunch(line.stateFile, { logger: quiet }).catch((e: unknown) => e);
    expect(isRunDirLockedError(e2) && e2.holderPid).toBe(c.pid);
    expect(processAlive(line.qemuPid)).toBe(true);
    // force: the lock is taken over and the holder's QEMU ended.
    const m = suite.adopt(await Machine.relaunch(line.stateFile, { force: true, logger: quiet }));
    expect(processAlive(line.qemuPid)).toBe(false);
    expect((await runDirProcesses(m.runDir)).map((p) => p.pid)).toEqual([m.pid]);
    c.kill('SIGKILL');
    await exit;
    await m.stop();
  }, 60_000);

  it('frees the lock at stop and when its process dies (no timers, no stale wait)', async () => {
    const config = await guestConfig(suite.dir, { name: 'lock3' });
    const runDir = path.join(suite.dir, 'lock3-run');
    const m = suite.adopt(await launch(config, { ...launchQemu(), runDir, logger: quiet }));
    expect(readdirSync(runDir)).toContain('manager.lock');
    await m.stop();
    expect(readdirSync(runDir)).not.toContain('manager.lock');
    const again = suite.adopt(await Machine.relaunch(path.join(runDir, 'state.json')));
    await again.stop();
  });
});

describe('crash debris', () => {
  it('removes temp files of killed state writes on the next open', async () => {
    const config = await guestConfig(suite.dir, { name: 'temps' });
    const runDir = path.join(suite.dir, 'temps-run');
    const m = suite.adopt(await launch(config, { ...launchQemu(), runDir, logger: quiet }));
    await m.stop();
    const temps = ['.state.json.4242.0a1b2c3d.tmp', '.state.json.4242.0a1b2c3d.bak.tmp'];
    for (const t of temps) writeFileSync(path.join(runDir, t), '{"half": ', { mode: 0o600 });
    const other = path.join(runDir, '.unrelated.tmp');
    writeFileSync(other, 'keep');
    const again = suite.adopt(await Machine.relaunch(path.join(runDir, 'state.json')));
    const left = readdirSync(runDir);
    for (const t of temps) expect(left).not.toContain(t);
    expect(left).toContain('.unrelated.tmp');
    await again.stop();
  });

  it('reclaims leaked clusters of writable qcow2 images after an unclean end, and logs it', async () => {
    const base = await guestConfig(suite.dir, { name: 'leaks' });
    const data = path.join(suite.dir, 'leaks-data.qcow2');
    await imageWithLeak(data);
    expect(
      (await runQemuImg(['check', '-f', 'qcow2', data]).catch((e: unknown) => e)) instanceof Error,
    ).toBe(true);
    const config = {
      ...base,
      blockdevs: [
        ...(base.blockdevs ?? []),
        { driver: 'file' as const, 'node-name': 'data-file', filename: data },
        { driver: 'qcow2' as const, 'node-name': 'data', file: 'data-file' },
      ],
      devices: [
        ...(base.devices ?? []),
        { driver: 'ide-hd' as const, id: 'data0', drive: 'data', bus: 'ide.1' },
      ],
    };
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), runDirParent: suite.dir, logger: quiet }),
    );
    process.kill(m.pid, 'SIGKILL');
    await m.exited;
    await expect
      .poll(async () => (await readState(m.stateFile ?? '')).runtime.status)
      .toBe('exited');
    const warnings: string[] = [];
    const again = suite.adopt(
      await Machine.relaunch(m.stateFile ?? '', {
        logger: { warn: (message: string) => warnings.push(message) },
      }),
    );
    expect(warnings.filter((w) => w.includes('leaked'))).toEqual([
      expect.stringMatching(/^reclaimed 1 of 1 leaked cluster\(s\) in .*leaks-data\.qcow2/),
    ]);
    await again.stop();
    expect(await repairLeaks(data)).toEqual({ file: data, leaks: 0, leaksFixed: 0 });
  });
});

describe('identification', () => {
  it('every QEMU names its run directory (pidfile) and the journal records it before the spawn', async () => {
    const config = await guestConfig(suite.dir, { name: 'ident' });
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), runDirParent: suite.dir, logger: quiet }),
    );
    const argv = readFileSync(`/proc/${m.pid}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('-pidfile') + 1]).toBe(path.join(m.runDir, 'qemu.pid'));
    expect(readFileSync(path.join(m.runDir, 'qemu.pid'), 'utf8').trim()).toBe(String(m.pid));
    const entries = readFileSync(path.join(m.runDir, 'qemu.journal'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { op: string; pid?: number });
    expect(entries.map((e) => e.op)).toEqual(['spawn', 'pid']);
    expect(entries[1]?.pid).toBe(m.pid);
    await m.stop();
  });
});
