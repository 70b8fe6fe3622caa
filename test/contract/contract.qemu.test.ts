/**
 * Contract tests: every scenario runs against each real qemu-system-x86_64 the tests know
 * (the system's 7.2 and the unpacked 10.0) and against @qmpkit/fake-qmp imitating the same
 * version; the normalised wire transcripts must be identical. Skipped only when a binary is
 * missing outside CI.
 */
import { QEMU, QEMU_10, type QemuBinary } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { qemuMissing, runScenario } from './runner.js';
import { scenarios } from './scenarios.js';

const binaries: readonly (readonly [release: string, binary: QemuBinary])[] = [
  ['7.2', QEMU],
  ['10.0', QEMU_10],
];

for (const [release, binary] of binaries) {
  const missing = qemuMissing(binary, release);
  if (missing && process.env.CI === 'true')
    throw new Error(`contract tests need QEMU ${release} in CI: ${missing}`);

  describe.skipIf(missing !== undefined)(
    `fake-qmp ${release} vs QEMU ${release}${missing ? ` (skipped: ${missing})` : ''}`,
    () => {
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
