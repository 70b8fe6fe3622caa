/**
 * Post-copy recovery across versions: a source on the system's QEMU 7.2, the target on 10.0
 * (pinned pc-i440fx-7.2), the break and recovery as in `postcopy-recovery.qemu.test.ts`. Names
 * both binaries, so it runs once (ONCE in vitest.config.ts).
 */
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { resolveQemuBinary } from './binary.js';
import { expectContinues, migrateAndBreak, source } from './postcopy.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-postcopy-cross-', binary: QEMU_SYSTEM });

describe.skipIf(qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10))(
  'post-copy recovery 7.2 → 10.0',
  () => {
    it('the stream breaks during post-copy: recovered into 10.0, the counter continues', async () => {
      const m = await source(suite, QEMU_SYSTEM);
      expect(m.qemuVersion.major).toBe(7);
      const before = m.console('ser0').read();
      const qemu = await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR });
      const { run } = migrateAndBreak(suite, m, {}, { qemu });
      const result = await run.result;
      const t = result.machine;
      expect(t.qemuVersion.major).toBe(10);
      expect(result.recoveries).toBe(1);
      expect((await m.exited).code).toBe(0);
      expect((await t.qmp.execute('query-status')).status).toBe('running');
      await expectContinues(before + m.console('ser0').read(), t);
      await t.stop();
    });
  },
);
