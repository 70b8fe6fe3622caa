/**
 * Crash consistency when *our* process dies during a save, on QEMU 7.2: a child Node process
 * (`save-child.test-support.ts`, one of the three strategies) saves `previous`, then `victim`, and is SIGKILLed at a phase
 * of that save — by itself at the exact point, or by this test when the child reports the
 * phase (so the save runs on for a moment). Its QEMU survives as an orphan; the test
 * relaunches the machine from its state file (`Machine.relaunch` kills the orphan first),
 * reopens the store and checks: no partial `victim` (or a complete one that loads), the
 * debris of the interrupted save is gone (state files, overlays, internal tags), and
 * `previous` loads and continues from its save point.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Machine } from '@qmpkit/machine';
import { qemuSuite, spawnNodeChild } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { mappedRamSupport } from '../mapped-ram.js';
import { openSnapshots } from '../snapshots.js';
import type { SnapshotPhase, StrategyKind } from '../types.js';
import { imageTags } from '../vm.js';
import { COUNTER, nextCounter } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

/** The process runs (a zombie waiting for a reaper that is not us does not count). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

interface Ready {
  stateFile: string;
  qemuPid: number;
  at: number;
}

/** Runs the child until it is killed; resolves with what it said and how it ended. */
async function runChild(
  dir: string,
  kind: StrategyKind,
  phase: SnapshotPhase,
  who: 'self' | 'parent',
): Promise<{ ready: Ready; sawPhase: boolean; done: boolean; signal: string | null }> {
  const child = spawnNodeChild(path.join(import.meta.dirname, 'save-child.test-support.ts'), [
    dir,
    kind,
    phase,
    who,
  ]);
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const ended = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ready: Ready | undefined;
  let sawPhase = false;
  let done = false;
  for await (const line of createInterface({ input: child.stdout })) {
    const msg = JSON.parse(line) as { ready?: Ready; phase?: string; done?: boolean };
    if (msg.ready) ready = msg.ready;
    if (msg.phase === phase) {
      sawPhase = true;
      if (who === 'parent') child.kill('SIGKILL');
    }
    if (msg.done) {
      done = true;
      child.kill('SIGKILL');
    }
  }
  const { code, signal } = await ended;
  if (ready === undefined)
    throw new Error(`child ended (${signal ?? code}) before it was ready:\n${stderr}`);
  return { ready, sawPhase, done, signal };
}

const CASES: [StrategyKind, SnapshotPhase, 'self' | 'parent'][] = [
  ['external', 'switch', 'self'],
  ['external', 'save', 'parent'],
  ['external', 'commit', 'self'],
  ['internal-jobs', 'pause', 'self'],
  ['internal-jobs', 'save', 'parent'],
  ['internal-jobs', 'commit', 'self'],
  ['internal-hmp', 'save', 'parent'],
  ['internal-hmp', 'commit', 'self'],
];

describe('SIGKILL of the Node process during a save', () => {
  it.each(CASES)('%s, in phase %s (killed by %s)', async (kind, phase, who) => {
    const dir = path.join(suite.dir, `${kind}-${phase}`);
    mkdirSync(dir, { mode: 0o700 });
    const store = path.join(dir, 'store');
    const child = await runChild(dir, kind, phase, who);
    expect(child.signal).toBe('SIGKILL');
    expect(child.sawPhase).toBe(true);
    expect(child.done).toBe(false);
    // The child's QEMU outlived it; relaunching the machine kills that orphan first.
    const m = suite.adopt(
      await Machine.relaunch(child.ready.stateFile, { logger: { warn: () => {} } }),
    );
    expect(alive(child.ready.qemuPid)).toBe(false);
    await m.console('ser0').expect(COUNTER, { timeout: 30_000 });

    const snaps = await openSnapshots(m, { dir: store, strategy: kind });
    const names = (await snaps.list()).map((s) => s.name);
    if (who === 'self') {
      // Killed before the manifest commit: the save never happened, and open cleaned it up.
      expect(names).toEqual(['previous']);
      expect(snaps.debris.pending).toEqual(['victim']);
    } else {
      expect(names[0]).toBe('previous');
      expect(names.length === 1 || names[1] === 'victim').toBe(true);
    }
    expect(snaps.store.manifest.pending).toEqual([]);
    // What the interrupted save had already written was found and removed.
    // Before the switch the new overlay is unused debris — and so is the empty state file a
    // mapped-ram save creates (0600) before the pause, where the live schema has mapped-ram
    // (a stream's file is made by the sink only once QEMU connects); at the commit the VM
    // runs on the overlay (kept) and the finished but uncommitted state file is debris.
    if (kind === 'external' && phase === 'switch') {
      const mapped = (await mappedRamSupport(m.qmp)).mappedRam;
      expect(snaps.debris.files.map((f) => path.basename(path.dirname(f))).sort()).toEqual(
        mapped ? ['layers', 'states'] : ['layers'],
      );
    }
    if (kind === 'external' && phase === 'commit')
      expect(snaps.debris.files.filter((f) => f.endsWith('.state')).length).toBe(1);
    if (kind !== 'external' && phase === 'commit')
      expect(snaps.debris.tags).toEqual([expect.stringMatching(/^victim~/)]);
    // No debris: every state file and overlay left is one a snapshot or the VM uses.
    const keep = snaps.store.referencedFiles();
    for (const b of m.config.blockdevs ?? []) {
      const filename = (b as { filename?: unknown }).filename;
      if (typeof filename === 'string') keep.add(path.resolve(filename));
    }
    for (const sub of ['states', 'layers'])
      for (const f of await readdir(path.join(store, sub)))
        expect(keep.has(path.join(store, sub, f)), `${sub}/${f}`).toBe(true);
    if (kind !== 'external') {
      // No tag of an uncommitted save survives the reopen.
      const tags = [...(await imageTags(m.qmp)).keys()];
      const committed = new Set(snaps.store.snapshots().map((s) => s.tag));
      for (const tag of tags) expect(committed.has(tag), tag).toBe(true);
      expect(tags.length).toBe(names.length);
    }

    await snaps.load('previous');
    const next = await nextCounter(m);
    expect(next).toBeGreaterThan(child.ready.at);
    expect(next).toBeLessThanOrEqual(child.ready.at + 3);
    if (names.includes('victim')) {
      await snaps.load('victim');
      await nextCounter(m);
    }
  });
});
