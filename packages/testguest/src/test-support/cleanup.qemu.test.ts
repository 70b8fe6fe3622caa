/**
 * The shared test support's clean-up against real QEMU: a QEMU it did not start itself (no
 * `spawnQemu`, as code under test or a child process starts them) is found by its `-pidfile`
 * under a dir and killed with every thread; one whose pidfile lies elsewhere is left alone;
 * a child process finds its QEMU children; adopted handles are killed by the suite.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  childQemuPids,
  killQemu,
  killQemusUnder,
  pidfileQemus,
  pidRunning,
  privateTempDir,
  qemuSuite,
  waitForFiles,
} from './index.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-support-test-' });

/** An idle QEMU with its pidfile at `pidfile`, spawned directly (not tracked by the module). */
async function untrackedQemu(pidfile: string): Promise<ChildProcess> {
  const child = spawn(
    suite.binary.system,
    [
      ...suite.binary.baseArgs,
      ...['-machine', 'none', '-nodefaults', '-display', 'none', '-S'],
      ...['-pidfile', pidfile],
    ],
    { stdio: 'ignore' },
  );
  await waitForFiles([pidfile], child);
  return child;
}

describe('killQemusUnder', () => {
  it('kills a QEMU whose pidfile lies below the dir and leaves one whose pidfile does not', async () => {
    const runDir = path.join(suite.dir, 'a', 'run');
    mkdirSync(runDir, { recursive: true });
    const inside = await untrackedQemu(path.join(runDir, 'qemu.pid'));
    // A sibling dir whose name starts like the suite's: not "under" it.
    const other = privateTempDir(`${path.basename(suite.dir)}-x`);
    const outside = await untrackedQemu(path.join(other.dir, 'qemu.pid'));
    try {
      const pid = inside.pid ?? -1;
      expect(pidfileQemus(suite.dir)).toEqual([pid]);
      const exited = new Promise((resolve) => inside.once('exit', (_c, signal) => resolve(signal)));
      expect(await killQemusUnder(suite.dir)).toEqual([pid]);
      expect(await exited).toBe('SIGKILL');
      expect(pidRunning(pid)).toBe(false);
      expect(pidRunning(outside.pid ?? -1)).toBe(true);
      expect(pidfileQemus(suite.dir)).toEqual([]);
    } finally {
      await killQemu(outside);
      other.remove();
    }
  });

  it('kills pids a test reported, whatever their command line', async () => {
    const child = spawn(suite.binary.system, [
      ...suite.binary.baseArgs,
      ...['-machine', 'none', '-nodefaults', '-display', 'none', '-S'],
    ]);
    const pid = child.pid ?? -1;
    const exited = new Promise((resolve) => child.once('exit', (_c, signal) => resolve(signal)));
    expect(await killQemusUnder(suite.dir, [pid])).toEqual([pid]);
    expect(await exited).toBe('SIGKILL');
  });
});

describe('childQemuPids', () => {
  it('lists the QEMU children of this process and no other child', async () => {
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    const qemu = await untrackedQemu(path.join(suite.dir, 'child.pid'));
    try {
      expect(childQemuPids()).toEqual([qemu.pid]);
    } finally {
      sleeper.kill('SIGKILL');
      await killQemu(qemu);
    }
  });
});

describe('qemuSuite', () => {
  let adopted: { status: string; kills: number } | undefined;

  it('adopts a handle (its cleanup runs after this test)', () => {
    const handle = {
      status: 'running',
      kills: 0,
      async kill() {
        this.kills++;
        this.status = 'exited';
      },
    };
    adopted = suite.adopt(handle);
    expect(handle.kills).toBe(0);
  });

  it('killed the handle adopted by the previous test once', () => {
    expect(adopted?.kills).toBe(1);
    expect(adopted?.status).toBe('exited');
  });
});
