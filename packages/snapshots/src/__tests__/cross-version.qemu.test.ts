/**
 * Snapshots across the upgrade and back (issue #14 item 4): per strategy, a snapshot saved on
 * one binary (7.2 or 10.0) loads on the other with the pinned machine type `pc-i440fx-7.2`,
 * which both have, and the guest continues exactly — RAM counter, disk counter and the COM1
 * lines the test had not read at the save. The VM is stopped and relaunched from its state
 * file on the other binary (`Machine.relaunch({ qemu })`), then the snapshot is loaded.
 * Compares two binaries itself, so it runs once (`ONCE` in vitest.config.ts).
 */
import path from 'node:path';
import { launch, Machine } from '@qmpkit/machine';
import {
  diskCounterOf,
  launchQemu,
  QEMU_10,
  QEMU_SYSTEM,
  type QemuBinary,
  qemuSkipReason,
  qemuSuite,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import {
  COUNTER,
  guestConfig,
  nextCounter,
  pauseAndRead,
  ramCounter,
} from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-xver-' });
const skip = qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10);
const quiet = { warn: () => {} };

const diskCounter = (m: Machine) => diskCounterOf(m.config);

const label = (b: QemuBinary) => `${b.version?.major}.${b.version?.minor}`;

describe.skipIf(skip !== undefined)(
  `snapshots across QEMU versions${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    for (const kind of ['internal-hmp', 'internal-jobs', 'external'] as StrategyKind[]) {
      for (const [from, to] of [
        [QEMU_SYSTEM, QEMU_10],
        [QEMU_10, QEMU_SYSTEM],
      ] as const) {
        it(`${kind}: saved on ${label(from)}, loaded on ${label(to)}, the guest continues exactly`, async () => {
          const name = `${kind}-${from.id}`;
          const config = await guestConfig(suite.dir, { name });
          const runDir = path.join(suite.dir, `run-${name}`);
          const dir = path.join(suite.dir, `snaps-${name}`);
          const m = suite.adopt(
            await launch(config, {
              ...launchQemu(from),
              consoles: ['ser0'],
              runDir,
              logger: quiet,
            }),
          );
          await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
          const snaps = await openSnapshots(m, { dir, strategy: kind });
          const consumed = await nextCounter(m);
          const n = await pauseAndRead(m);
          const diskAtSave = await diskCounter(m);
          // Portable: from 10.0, external would otherwise write mapped-ram, which 7.2 cannot read.
          await snaps.save('a', { portable: true });
          const stateFile = m.stateFile ?? '';
          await m.stop();

          const m2 = suite.adopt(
            await Machine.relaunch(stateFile, { ...launchQemu(to), logger: quiet }),
          );
          expect(m2.qemuVersion).toMatchObject({
            major: to.version?.major,
            minor: to.version?.minor,
          });
          expect(m2.machineType).toBe('pc-i440fx-7.2');
          const snaps2 = await openSnapshots(m2, { dir, strategy: kind });
          // force: the compatibility check of a load on another binary (a probe of ~20 s
          // here) has its own suite, load-compat.qemu.test.ts; this one is about continuing.
          await snaps2.load('a', { force: true });
          expect(await ramCounter(m2)).toBe(n);
          expect(await diskCounter(m2)).toBe(diskAtSave);
          await m2.qmp.execute('cont');
          expect(await nextCounter(m2)).toBe(consumed + 1);
          await m2.stop();
        });
      }
    }
  },
);
