/**
 * Issue #12 §1 in the snapshot store, against a real QEMU 7.2: a manager killed in the middle
 * of an external load leaves its `-incoming defer` QEMU behind; the next relaunch ends it and
 * the store keeps every committed snapshot. Overlays are private (0600). A save that would
 * mix internal and external snapshots (and so make one of them unloadable) is refused.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Machine, runDirProcesses } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import { isSnapshotUnsupportedError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import { COUNTER, guestConfig, nextCounter, qemuSuite, startGuest } from './qemu.test-support.js';

const { tmp, started, reported } = qemuSuite();

/** The process runs (a zombie waiting for a reaper that is not us holds nothing). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

describe('a manager killed during an external load', () => {
  it('leaves no QEMU behind after the relaunch, and no snapshot is lost', async () => {
    const dir = path.join(tmp.dir, 'load-kill');
    mkdirSync(dir, { mode: 0o700 });
    const child = spawn(
      process.execPath,
      [
        '--conditions=@qmpkit/source',
        '--import',
        'tsx',
        path.join(import.meta.dirname, 'load-child.test-support.ts'),
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    let ready: { stateFile: string; at: number } | undefined;
    let incomingPid: number | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line) as { ready?: typeof ready; incomingPid?: number };
      if (msg.ready) ready = msg.ready;
      if (msg.incomingPid !== undefined) {
        incomingPid = msg.incomingPid;
        reported.add(incomingPid);
      }
    }
    expect(await exit, stderr).toBe('SIGKILL');
    if (ready === undefined || incomingPid === undefined) throw new Error(`child said:\n${stderr}`);
    // The incoming QEMU outlived its manager (it was started paused, waiting for a stream).
    expect(running(incomingPid)).toBe(true);

    const m = started.add(await Machine.relaunch(ready.stateFile, { logger: { warn: () => {} } }));
    // Before the fix it ran on, unknown, beside the relaunched VM (and the next open deleted
    // the overlay it had open as debris).
    expect(running(incomingPid)).toBe(false);
    expect((await runDirProcesses(m.runDir)).map((p) => p.pid)).toEqual([m.pid]);
    await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
    const snaps = await openSnapshots(m, { dir: path.join(dir, 'store'), strategy: 'external' });
    expect((await snaps.list()).map((s) => s.name)).toEqual(['base']);
    await snaps.load('base');
    const next = await nextCounter(m);
    expect(next).toBeGreaterThan(ready.at);
    expect(next).toBeLessThanOrEqual(ready.at + 3);
    await m.stop();
    expect(await runDirProcesses(dir, { nested: true })).toEqual([]);
  }, 120_000);
});

describe('store hygiene', () => {
  it('creates overlay images and state files 0600', async () => {
    const config = await guestConfig(tmp.dir, { name: 'modes' });
    const m = started.add(await startGuest(tmp.dir, config));
    const store = path.join(tmp.dir, 'modes-store');
    const snaps = await openSnapshots(m, { dir: store, strategy: 'external' });
    await snaps.save('one');
    await snaps.load('one');
    const files = [
      ...(await readdir(path.join(store, 'layers'))).map((f) => path.join(store, 'layers', f)),
      ...(await readdir(path.join(store, 'states'))).map((f) => path.join(store, 'states', f)),
    ];
    // The load's overlay (the save's went with the load: no snapshot builds on it) and the state.
    expect(files.map((f) => path.basename(path.dirname(f)))).toEqual(['layers', 'states']);
    for (const f of files) expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
  });

  it('refuses an internal save on a VM with external snapshots, and the reverse', async () => {
    const config = await guestConfig(tmp.dir, { name: 'mix' });
    const m = started.add(await startGuest(tmp.dir, config));
    const store = path.join(tmp.dir, 'mix-store');
    const snaps = await openSnapshots(m, { dir: store, strategy: 'external' });
    await snaps.save('ext');
    for (const kind of ['internal-jobs', 'internal-hmp'] as const) {
      const error = await snaps
        .strategy(kind)
        .save('int')
        .result.catch((e: unknown) => e);
      expect(isSnapshotUnsupportedError(error) && error.reasons[0]).toMatch(
        /holds external snapshots \('ext'\)/,
      );
    }
    // Through the store's own front door (what `qmpkit snapshot save --strategy` uses).
    const viaStore = await openSnapshots(m, { dir: store, strategy: 'internal-jobs' });
    const e2 = await viaStore.save('int').result.catch((e: unknown) => e);
    expect(isSnapshotUnsupportedError(e2)).toBe(true);
    expect((await viaStore.list()).map((s) => s.name)).toEqual(['ext']);
    // Once the external snapshots are gone, an internal save works; then external is refused.
    await viaStore.delete('ext');
    await viaStore.save('int');
    const e3 = await viaStore
      .strategy('external')
      .save('ext2')
      .result.catch((e: unknown) => e);
    expect(isSnapshotUnsupportedError(e3) && e3.reasons[0]).toMatch(
      /holds internal snapshots \('int'\)/,
    );
    await viaStore.load('int');
    await nextCounter(m);
  });
});
