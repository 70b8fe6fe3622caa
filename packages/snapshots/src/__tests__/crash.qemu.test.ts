/**
 * Crash consistency on QEMU 7.2: QEMU is SIGKILLed at several points of each strategy's
 * save, and saves are aborted through the API. Afterwards the store (reopened, debris
 * cleaned) lists the previous snapshots and either no new one or a complete one, and the
 * previous snapshot loads and continues from its save point.
 */
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isSnapshotAbortedError } from '../errors.js';
import { openSnapshots } from '../snapshots.js';
import type { SnapshotPhase, StrategyKind } from '../types.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

/** [strategy, phase to kill QEMU in, delay in ms after the phase starts]. */
const KILLS: [StrategyKind, SnapshotPhase, number][] = [
  ['internal-hmp', 'pause', 0],
  ['internal-hmp', 'save', 3],
  ['internal-hmp', 'resume', 0],
  ['internal-jobs', 'pause', 0],
  ['internal-jobs', 'save', 3],
  ['internal-jobs', 'resume', 0],
  ['external', 'overlay', 0],
  ['external', 'switch', 0],
  ['external', 'save', 3],
  ['external', 'saved', 0],
  ['external', 'commit', 0],
  ['external', 'done', 0],
];

async function scenario(kind: StrategyKind, label: string) {
  const dir = path.join(suite.dir, label);
  const config = await guestConfig(suite.dir, { name: label });
  const m = suite.adopt(await startGuest(suite.dir, config));
  const snaps = await openSnapshots(m, { dir, strategy: kind });
  const at = await nextCounter(m);
  await snaps.save('previous');
  await nextCounter(m);
  return { dir, m, snaps, at };
}

async function expectPreviousLoads(
  s: Awaited<ReturnType<typeof scenario>>,
  kind: StrategyKind,
): Promise<string[]> {
  const reopened = await openSnapshots(s.m, { dir: s.dir, strategy: kind });
  const names = (await reopened.list()).map((x) => x.name);
  expect(names[0]).toBe('previous');
  // No debris: every state file left is one the manifest references.
  const referenced = new Set(
    reopened.store
      .snapshots()
      .flatMap((x) => (x.stateFile ? [path.basename(x.stateFile.path)] : [])),
  );
  for (const f of await readdir(path.join(s.dir, 'states'))) expect(referenced.has(f)).toBe(true);
  await reopened.load('previous');
  const next = await nextCounter(s.m);
  expect(next).toBeGreaterThan(s.at);
  expect(next).toBeLessThanOrEqual(s.at + 3);
  return names;
}

describe('SIGKILL of QEMU during a save', () => {
  it.each(KILLS)('%s, in phase %s (+%i ms)', async (kind, phase, delay) => {
    const s = await scenario(kind, `kill-${kind}-${phase}`);
    const pid = s.m.pid;
    const kill = () => process.kill(pid, 'SIGKILL');
    const outcome = await s.snaps
      .save('victim', {
        onProgress: (p) => {
          if (p.phase !== phase) return;
          if (delay === 0) kill();
          else setTimeout(kill, delay);
        },
      })
      .result.then(
        () => 'saved',
        () => 'failed',
      );
    await s.m.exited;
    const names = await expectPreviousLoads(s, kind);
    // Either no new snapshot, or a complete one (that loads).
    if (names.includes('victim')) {
      expect(outcome).toBe('saved');
      const reopened = await openSnapshots(s.m, { dir: s.dir, strategy: kind });
      await reopened.load('victim');
      await nextCounter(s.m);
    } else expect(names).toEqual(['previous']);
    if (kind !== 'external') {
      // No orphaned internal tag survives the reopen.
      const image = (s.m.config.blockdevs ?? []).find((b) => b['node-name'] === 'disk0-file') as {
        filename: string;
      };
      await s.m.stop();
      const list = spawnSync(suite.binary.img, ['snapshot', '-l', image.filename], {
        encoding: 'utf8',
      }).stdout;
      expect(list).not.toMatch(/victim~/);
    }
  });
});

describe('abort from the API', () => {
  it.each<[StrategyKind, SnapshotPhase]>([
    ['internal-hmp', 'pause'],
    ['internal-jobs', 'save'],
    ['external', 'switch'],
    ['external', 'save'],
  ])('%s, in phase %s', async (kind, phase) => {
    const s = await scenario(kind, `abort-${kind}-${phase}`);
    const controller = new AbortController();
    const error = await s.snaps
      .save('victim', {
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === phase) controller.abort(new Error('test abort'));
        },
      })
      .result.catch((e: unknown) => e);
    expect(isSnapshotAbortedError(error)).toBe(true);
    // The VM runs on.
    expect((await s.m.qmp.execute('query-status')).running).toBe(true);
    await nextCounter(s.m);
    expect(await expectPreviousLoads(s, kind)).toEqual(['previous']);
  });
});
