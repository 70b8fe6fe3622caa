/**
 * Contract tests: every scenario runs against a real QEMU and against @qmpkit/fake-qmp
 * imitating that QEMU's version; the normalised wire transcripts must be identical. The
 * binaries come from the shared test support (`QMPKIT_QEMU` overrides the system's), which
 * also kills every QEMU a test started (after each test, also on failure or timeout) and
 * never lets a suite skip with `CI=true`.
 */
import { QEMU, QEMU_10, type QemuBinary, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { contractSkipReason, fakeVersionOf, runScenario } from './runner.js';
import { scenarios } from './scenarios.js';

/** The binaries the scenarios run on, each against the fake imitating its version. */
const CONTRACT_BINARIES: readonly QemuBinary[] = [QEMU, QEMU_10];

function contractSuite(binary: QemuBinary): void {
  const reason = contractSkipReason(binary);
  describe.skipIf(reason !== undefined)(
    `fake-qmp vs ${binary.description}${reason === undefined ? '' : ` (skipped: ${reason})`}`,
    () => {
      // Not for a skipped suite: its hooks would not run to remove the suite's temp dir.
      if (reason === undefined)
        qemuSuite({ binary, kill: 'each', prefix: `qmpkit-contract-${binary.id}-` });
      it('the fake imitates the version of this binary', () => {
        const { major, minor } = binary.version ?? { major: 0, minor: 0 };
        expect(fakeVersionOf(binary)).toBe(`${major}.${minor}`);
      });
      it('has at least 25 scenarios', () => {
        expect(scenarios.length).toBeGreaterThanOrEqual(25);
      });
      for (const scenario of scenarios) {
        it(scenario.name, async () => {
          const [real, fake] = await Promise.all([
            runScenario(scenario, 'qemu', binary),
            runScenario(scenario, 'fake', binary),
          ]);
          expect(fake).toEqual(real);
        });
      }
    },
  );
}

for (const binary of CONTRACT_BINARIES) contractSuite(binary);
