/**
 * Post-copy recovery of the local `migrate()` and `recoverPostcopy()`, on the binary of the
 * vitest project (both sides the same version). The break is deterministic by construction:
 * post-copy's own bandwidth limit keeps seconds of RAM outstanding after the switch, the
 * target is SIGSTOPped at its RESUME (device state loaded: the guest is the target's) so the
 * stream cannot finish, and the test cuts it with `pausePostcopy()` (`migrate-pause`).
 * "Continues" means: the source's COM1 text and the target's, read together, are one counter
 * with no gap and no repeat.
 */
import path from 'node:path';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isLiveMigrationError, type LiveMigrationError } from './errors.js';
import {
  type LiveMigrateOptions,
  type LiveMigration,
  type MigrationProgress,
  migrate,
} from './live-migration.js';
import { launch, Machine } from './machine.js';
import { recoverPostcopy } from './postcopy-recovery.js';
import { guestConfig } from './qemu.test-support.js';
import { readState } from './state.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-postcopy-recovery-' });
const quiet = { warn: () => {} };
const COUNTER = /C=([0-9A-F]{8})\r\n/g;
const MiB = 1024 * 1024;

let n = 0;
async function source(): Promise<Machine> {
  n += 1;
  const config = await guestConfig(suite.dir, {
    name: `g${n}`,
    dirtyRam: true,
    intervalMs: 0,
    memoryMiB: 8,
  });
  const m = suite.adopt(
    await launch(config, {
      ...launchQemu(),
      consoles: ['ser0'],
      runDir: path.join(suite.dir, `src-${n}`),
      logger: quiet,
    }),
  );
  await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
  return m;
}

function counters(text: string): number[] {
  return [...text.matchAll(COUNTER)].map((m) => Number.parseInt(m[1] ?? '', 16));
}

async function failure(promise: Promise<unknown>): Promise<LiveMigrationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isLiveMigrationError(error)) throw new Error(`expected a LiveMigrationError, got ${error}`);
  return error;
}

// 2 MiB/s, also after the switch (post-copy has its own limit, unlimited by default): the guest
// rewrites all its RAM, so at the switch most of the 8 MiB is still to come, for seconds.
const slowPostcopy: LiveMigrateOptions = {
  maxBandwidth: 2 * MiB,
  parameters: { 'max-postcopy-bandwidth': 2 * MiB },
  progressInterval: 100,
  convergence: false,
  postcopy: 'immediate',
};

/**
 * Starts the migration; at the target's RESUME freezes the target and pauses the stream from
 * the source's side, then lets the target go on (it notices the broken link itself).
 */
function migrateAndBreak(m: Machine, options: LiveMigrateOptions) {
  const seen: {
    target?: Machine;
    paused?: Promise<void>;
    early?: Promise<LiveMigrationError>;
    phases: string[];
    relaunch: Promise<unknown>[];
  } = { phases: [], relaunch: [] };
  let cut: () => void = () => {};
  /** Settles once the stream was cut (the target is running again then). */
  const wasCut = new Promise<void>((resolve) => {
    cut = resolve;
  });
  const run: LiveMigration = migrate(
    m,
    { runDir: path.join(suite.dir, `tgt-${n}`) },
    {
      logger: quiet,
      ...slowPostcopy,
      ...options,
      onPhase: async (phase, { target }) => {
        seen.phases.push(phase);
        if (phase === 'setup' && target !== undefined) {
          seen.target = suite.adopt(target);
          // No migration yet: refused, nothing changes.
          seen.early = failure(run.pausePostcopy());
          target.qmp.on('RESUME', () => {
            if (seen.paused !== undefined) return;
            process.kill(target.pid, 'SIGSTOP');
            seen.paused = run.pausePostcopy().finally(() => {
              process.kill(target.pid, 'SIGCONT');
              cut();
            });
          });
        }
        // A manager that restarts now must leave both QEMUs alone: relaunch refuses both.
        if (phase === 'postcopy-paused' && target !== undefined && seen.relaunch.length === 0)
          for (const file of [m.stateFile ?? '', target.stateFile ?? ''])
            seen.relaunch.push(Machine.relaunch(file, { logger: quiet }).catch((e: unknown) => e));
      },
    },
  );
  const samples: MigrationProgress[] = [];
  const collected = (async () => {
    for await (const p of run.progress) samples.push(p);
  })();
  return { run, seen, samples, collected, wasCut };
}

/** The guest counts on across the source's text and the target's. */
async function expectContinues(sourceText: string, t: Machine): Promise<void> {
  const seen = await t.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){3}/, { timeout: 30_000 });
  const all = counters(sourceText + seen.before + seen.match + t.console('ser0').read());
  expect(all.length).toBeGreaterThan(3);
  const first = all[0] ?? 0;
  expect(all).toEqual(all.map((_, i) => first + i));
}

async function expectRelaunchRefused(relaunch: readonly Promise<unknown>[]): Promise<void> {
  expect(relaunch).toHaveLength(2);
  for (const e of await Promise.all(relaunch))
    expect(isLiveMigrationError(e) && e.reason).toBe('postcopy-paused');
}

describe('post-copy recovery (local migrate)', () => {
  it('the stream breaks during post-copy: a fresh channel, the counter continues', async () => {
    const m = await source();
    const before = m.console('ser0').read();
    const { run, seen, samples, collected } = migrateAndBreak(m, {});
    const result = await run.result;
    await collected;
    const t = result.machine;
    expect((await seen.early)?.reason).toBe('not-active');
    expect(result.postcopy).toBe(true);
    expect(result.recoveries).toBe(1);
    expect(seen.phases).toEqual([
      'starting-target',
      'setup',
      'transferring',
      'switchover',
      'confirming',
      'postcopy-paused',
      'recovering',
      'confirming',
      'finishing',
    ]);
    await expectRelaunchRefused(seen.relaunch);
    // Progress told of the pause and of the attempt.
    expect(samples.some((s) => s.phase === 'postcopy-paused')).toBe(true);
    const recovering = samples.find((s) => s.phase === 'recovering');
    expect(recovering?.recovery).toMatchObject({ attempt: 1, of: 3 });
    // The source sent the rest and quit cleanly; the target runs the guest.
    expect(m.status).toBe('stopped');
    expect((await m.exited).code).toBe(0);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    expect((await t.qmp.execute('query-migrate')).status).toBe('completed');
    await expectContinues(before + m.console('ser0').read(), t);
    expect((await readState(m.stateFile ?? '')).runtime.migration?.phase).toBe('done');
    expect((await readState(t.stateFile ?? '')).runtime.migration).toBeUndefined();
    await t.stop();
  });

  it('recovery impossible: retries, then postcopy-paused with both QEMUs alive; cancel is refused; recoverPostcopy succeeds later', async () => {
    const m = await source();
    const before = m.console('ser0').read();
    // A socket in a directory that does not exist: the target cannot listen there.
    const nowhere = path.join(suite.dir, 'missing', 'recover.sock');
    const { run, seen, wasCut } = migrateAndBreak(m, {
      postcopyRecovery: { attempts: 2, listen: () => ({ type: 'unix', path: nowhere }) },
    });
    await seen.early;
    // Post-copy cannot be cancelled in QEMU: the API says so (tried once the stream is cut).
    const refused = wasCut.then(() => failure(run.cancel()));
    const e = await failure(run.result);
    await seen.paused;
    expect((await refused).reason).toBe('cannot-cancel');
    expect(e.reason).toBe('postcopy-paused');
    expect(e.desc).toMatch(/2 recovery attempt\(s\) failed/);
    expect(e.desc).toMatch(/the target QEMU .* holds the guest's CPU and device state/);
    expect(e.sourceRunning).toBe(false);
    const t = seen.target;
    if (t === undefined) throw new Error('no target');
    // Both alive, both paused, both recorded; a manager's relaunch is refused on both sides.
    expect(m.status).toBe('running');
    expect(t.status).toBe('running');
    // The source is stopped; the target's vCPUs run but stall on every page still missing.
    expect((await m.qmp.execute('query-status')).running).toBe(false);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    for (const side of [m, t]) {
      expect((await side.qmp.execute('query-migrate')).status).toBe('postcopy-paused');
      expect((await readState(side.stateFile ?? '')).runtime.migration?.phase).toBe(
        'postcopy-paused',
      );
    }
    await expectRelaunchRefused(seen.relaunch);
    // A second recovery, to an address the target can listen on.
    const recovered = await recoverPostcopy(m, t);
    expect(recovered.machine).toBe(t);
    expect(recovered.attempts).toBe(1);
    expect(m.status).toBe('stopped');
    expect((await m.exited).code).toBe(0);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    await expectContinues(before + m.console('ser0').read(), t);
    expect((await readState(t.stateFile ?? '')).runtime.migration).toBeUndefined();
    await t.stop();
  });
});
