/**
 * `@qmpkit/machine`'s live `migrate()` between two fake QEMU processes — what a user's test
 * does when it checks its migration code without QEMU: `launch` the fake (`qmpkit-fake-qemu`,
 * fake-qmp's process mode, which reads QEMU's command line) and migrate it into a second fake
 * started by `migrate()` itself with `-incoming defer`. No real QEMU; every process here is
 * started by the test and ended by its pid.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import {
  isLiveMigrationError,
  launch,
  type Machine,
  type MigrationProgress,
  migrate,
  resolveQemuBinary,
} from '@qmpkit/machine';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFakeQemu } from '../../packages/machine/src/fake-qemu.test-support.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-migration-'));
const machines: Machine[] = [];
afterEach(async () => {
  for (const m of machines.splice(0)) if (m.status !== 'stopped') await m.kill();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The fake QEMU executable: fake-qmp's process mode run from source (tests are not built). */
const { path: fake, env } = writeFakeQemu(dir);
const quiet = { warn: () => {} };

beforeAll(async () => {
  // launch checks its binary with `--version` (a slow start of the fake, cached per file).
  await resolveQemuBinary(fake, { env });
}, 30_000);

const config: VmConfig = {
  machine: { type: 'pc' },
  accel: ['tcg'],
  memory: { size: 32 * MiB },
};

let n = 0;
async function source(): Promise<Machine> {
  const m = await launch(config, {
    qemu: fake,
    runDirParent: dir,
    env,
    logger: quiet,
  });
  machines.push(m);
  return m;
}

describe('migrate() between two fake QEMUs', () => {
  it('moves a running machine over unix: the target runs, the source is gone, progress was reported', async () => {
    const m = await source();
    const run = migrate(m, { runDir: path.join(dir, `tgt-${++n}`), env }, { logger: quiet });
    const seen: MigrationProgress[] = [];
    const collecting = (async () => {
      for await (const p of run.progress) seen.push(p);
    })();
    const result = await run.result;
    machines.push(result.machine);
    await collecting;
    expect(run.phase).toBe('done');
    expect(result.running).toBe(true);
    expect(m.status).toBe('stopped');
    expect(await result.machine.qmp.execute('query-status')).toMatchObject({
      status: 'running',
    });
    expect(result.capabilities).toEqual(
      expect.arrayContaining(['events', 'return-path', 'pause-before-switchover']),
    );
    // The fake's 32 MiB guest at the raised bandwidth: the last sample has copied all of it.
    expect(result.lastProgress?.total).toBe(32 * MiB);
  }, 60_000);

  it('a paused source arrives paused', async () => {
    const m = await source();
    await m.qmp.execute('stop');
    const result = await migrate(
      m,
      { runDir: path.join(dir, `tgt-${++n}`), env },
      { logger: quiet },
    ).result;
    machines.push(result.machine);
    expect(result.running).toBe(false);
    expect((await result.machine.qmp.execute('query-status')).status).toBe('paused');
  }, 60_000);

  // The source waits at pre-switchover for migrate() to continue: certain timing. Without a
  // beforeSwitchover hook, an abort from onPhase('switchover') must stop the hand-over too
  // (it went on to migrate-continue before: the fakes showed it).
  it.for(['beforeSwitchover', 'onPhase'] as const)(
    'an abort at pre-switchover (from %s) cancels (migrate_cancel): the source runs on, the target is gone',
    { timeout: 60_000 },
    async (via) => {
      const m = await source();
      const abort = new AbortController();
      const run = migrate(
        m,
        { runDir: path.join(dir, `tgt-${++n}`), env },
        {
          logger: quiet,
          signal: abort.signal,
          ...(via === 'beforeSwitchover'
            ? { beforeSwitchover: async () => abort.abort() }
            : { onPhase: (phase: string) => (phase === 'switchover' ? abort.abort() : undefined) }),
        },
      );
      const error = await run.result.catch((e: unknown) => e);
      expect(isLiveMigrationError(error)).toBe(true);
      if (!isLiveMigrationError(error)) return;
      expect(error.phase).toBe('switchover');
      expect(m.status).toBe('running');
      expect((await m.qmp.execute('query-status')).status).toBe('running');
      expect((await m.qmp.execute('query-migrate')).status).toBe('cancelled');
    },
  );
});
