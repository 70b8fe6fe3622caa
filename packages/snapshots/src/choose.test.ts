import { describe, expect, it } from 'vitest';
import { decideStrategy, type StrategyProbes } from './choose.js';
import { isSnapshotUnsupportedError, type SnapshotUnsupportedError } from './errors.js';

/** A VM on a recent QEMU with one writable qcow2 disk: every strategy works. */
const ok: StrategyProbes = {
  snapshotSave: true,
  migrationBlockers: [],
  snapshottableNodes: ['disk0'],
  savevmBlockers: [],
  rawVarstore: undefined,
  writableLayers: ['disk0'],
  sharedMemoryBackends: [],
  ignoreShared: false,
  backgroundSnapshot: true,
};

const WHY_EXTERNAL =
  'qcow2 overlays + a migration stream file: the fastest save and load, live mode available, images do not grow by the RAM size per snapshot';
const WHY_JOBS =
  'snapshot-save jobs: everything stays inside the qcow2 images, only writable qcow2 nodes are listed (a raw varstore does not block)';
const WHY_HMP =
  'HMP savevm: works on any QEMU, but every writable disk must be qcow2 and errors come back as text';

function reasons(probes: StrategyProbes, live = false) {
  const choice = decideStrategy(probes, { live, prefer: 'external' });
  return Object.fromEntries(choice.candidates.map((c) => [c.kind, c.reasons]));
}

function refusal(probes: StrategyProbes, options = {}): SnapshotUnsupportedError {
  try {
    decideStrategy(probes, options);
  } catch (e) {
    if (isSnapshotUnsupportedError(e)) return e;
    throw e;
  }
  throw new Error('decideStrategy found a feasible strategy');
}

describe('decideStrategy', () => {
  it('takes external when everything works, and explains each candidate', () => {
    const choice = decideStrategy(ok);
    expect(choice.kind).toBe('external');
    expect(choice.probes).toBe(ok);
    expect(choice.candidates.map((c) => [c.kind, c.feasible])).toEqual([
      ['external', true],
      ['internal-jobs', true],
      ['internal-hmp', true],
    ]);
    expect(choice.explanation).toBe(
      [
        `external: chosen — ${WHY_EXTERNAL}`,
        `internal-jobs: possible — ${WHY_JOBS}`,
        `internal-hmp: possible — ${WHY_HMP}`,
      ].join('\n'),
    );
  });

  it('takes a feasible preferred strategy and says it was preferred', () => {
    const choice = decideStrategy(ok, { prefer: 'internal-hmp' });
    expect(choice.kind).toBe('internal-hmp');
    expect(choice.explanation.split('\n')).toEqual([
      `external: possible — ${WHY_EXTERNAL}`,
      `internal-jobs: possible — ${WHY_JOBS}`,
      `internal-hmp: chosen (preferred) — ${WHY_HMP}`,
    ]);
  });

  it('falls back to the default order when the preferred strategy is not feasible', () => {
    const choice = decideStrategy({ ...ok, savevmBlockers: ['data'] }, { prefer: 'internal-hmp' });
    expect(choice.kind).toBe('external');
    expect(choice.explanation.split('\n')[0]).toBe(`external: chosen — ${WHY_EXTERNAL}`);
    expect(choice.explanation.split('\n')[2]).toBe(
      "internal-hmp: not possible — block node 'data' is writable but not qcow2, and HMP savevm cannot leave it out",
    );
  });

  it('a raw pflash varstore blocks only HMP savevm, and is named as the varstore', () => {
    const probes = { ...ok, savevmBlockers: ['varstore', 'data'], rawVarstore: 'varstore' };
    expect(reasons(probes)).toEqual({
      external: [],
      'internal-jobs': [],
      'internal-hmp': [
        "block node 'varstore' (the pflash1 varstore) is writable but not qcow2, and HMP savevm cannot leave it out",
        "block node 'data' is writable but not qcow2, and HMP savevm cannot leave it out",
      ],
    });
    const choice = decideStrategy(probes, { prefer: 'internal-jobs' });
    expect(choice.kind).toBe('internal-jobs');
  });

  it('shared memory backends block the internal strategies only with x-ignore-shared on', () => {
    const shared = { ...ok, sharedMemoryBackends: ['mem0', 'mem1'] };
    expect(reasons(shared)).toEqual({ external: [], 'internal-jobs': [], 'internal-hmp': [] });
    const why =
      'x-ignore-shared is on and guest RAM is in shared backend(s) mem0, mem1: savevm would silently leave that RAM out';
    expect(reasons({ ...shared, ignoreShared: true })).toEqual({
      external: [],
      'internal-jobs': [why],
      'internal-hmp': [why],
    });
    // x-ignore-shared without shared backends leaves nothing out.
    expect(reasons({ ...ok, ignoreShared: true })['internal-jobs']).toEqual([]);
  });

  it('a QEMU without snapshot-save rules out the jobs strategy only', () => {
    const old = { ...ok, snapshotSave: false };
    expect(reasons(old)).toEqual({
      external: [],
      'internal-jobs': ['no snapshot-save in this QEMU'],
      'internal-hmp': [],
    });
    const choice = decideStrategy({ ...old, writableLayers: [] });
    expect(choice.kind).toBe('internal-hmp');
    expect(choice.explanation.split('\n')).toEqual([
      'external: not possible — no writable disk to put an overlay on',
      'internal-jobs: not possible — no snapshot-save in this QEMU',
      `internal-hmp: chosen — ${WHY_HMP}`,
    ]);
  });

  it('without a writable qcow2 disk the internal strategies have nowhere to put the VM state', () => {
    const choice = decideStrategy({ ...ok, snapshottableNodes: [] });
    expect(choice.kind).toBe('external');
    expect(reasons({ ...ok, snapshottableNodes: [] })['internal-jobs']).toEqual([
      'no writable qcow2 disk to hold the VM state',
    ]);
  });

  it('migration blockers rule out every strategy: the error lists every reason per strategy', () => {
    const blocked = { ...ok, migrationBlockers: ['non-migratable device: vfio'] };
    const e = refusal(blocked);
    expect(e.strategy).toBe('external');
    expect(e.reasons).toEqual([
      'external: migration is blocked: non-migratable device: vfio',
      'internal-jobs: migration is blocked: non-migratable device: vfio',
      'internal-hmp: migration is blocked: non-migratable device: vfio',
    ]);
    // The error names the preferred strategy when there was one.
    expect(refusal(blocked, { prefer: 'internal-jobs' }).strategy).toBe('internal-jobs');
  });

  it('live saves: only external with background-snapshot', () => {
    const choice = decideStrategy(ok, { live: true, prefer: 'internal-jobs' });
    expect(choice.kind).toBe('external');
    expect(choice.explanation.split('\n')).toEqual([
      `external: chosen — ${WHY_EXTERNAL}`,
      'internal-jobs: not possible — live saves need the external strategy (background-snapshot)',
      'internal-hmp: not possible — live saves need the external strategy (background-snapshot)',
    ]);
    // Without userfaultfd write-protect nothing can save live.
    const e = refusal({ ...ok, backgroundSnapshot: false }, { live: true });
    expect(e.reasons).toEqual([
      'external: the background-snapshot capability cannot be enabled (userfaultfd write-protect)',
      'internal-jobs: live saves need the external strategy (background-snapshot)',
      'internal-hmp: live saves need the external strategy (background-snapshot)',
    ]);
    // Not asked for live, a missing background-snapshot does not matter.
    expect(decideStrategy({ ...ok, backgroundSnapshot: false }).kind).toBe('external');
  });

  it('reasons accumulate in the explanation, joined by "; "', () => {
    const choice = decideStrategy({
      ...ok,
      snapshotSave: false,
      snapshottableNodes: [],
      sharedMemoryBackends: ['mem0'],
      ignoreShared: true,
    });
    expect(choice.explanation.split('\n')[1]).toBe(
      'internal-jobs: not possible — x-ignore-shared is on and guest RAM is in shared backend(s) mem0: savevm would silently leave that RAM out; no writable qcow2 disk to hold the VM state; no snapshot-save in this QEMU',
    );
  });
});
