/**
 * Post-copy recovery of the local `migrate()` and `recoverPostcopy()`, on the binary of the
 * vitest project (both sides the same version); the harness (and how the break is made
 * deterministic) is in `postcopy.test-support.ts`, 7.2 → 10.0 in
 * `postcopy-recovery-cross.qemu.test.ts`.
 */
import path from 'node:path';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import {
  expectContinues,
  expectRelaunchRefused,
  failure,
  migrateAndBreak,
  source as sourceIn,
} from './postcopy.test-support.js';
import { recoverPostcopy } from './postcopy-recovery.js';
import { readState } from './state.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-postcopy-recovery-' });
const source = () => sourceIn(suite);

describe('post-copy recovery (local migrate)', () => {
  it('the stream breaks during post-copy: a fresh channel, the counter continues', async () => {
    const m = await source();
    const before = m.console('ser0').read();
    const { run, seen, samples, collected } = migrateAndBreak(suite, m, {});
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
    const { run, seen, wasCut } = migrateAndBreak(suite, m, {
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
