/**
 * Contract tests: every scenario runs against a real qemu-system-x86_64 7.2 and against
 * @qmpkit/fake-qmp; the normalised wire transcripts must be identical. Skipped only when
 * QEMU 7.2 is missing outside CI.
 */
import { describe, expect, it } from 'vitest';
import { qemuMissing, runScenario } from './runner.js';
import { scenarios } from './scenarios.js';

const missing = qemuMissing();
if (missing && process.env.CI === 'true')
  throw new Error(`contract tests need QEMU 7.2 in CI: ${missing}`);

describe.skipIf(missing !== undefined)(
  `fake-qmp vs QEMU 7.2${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('has at least 25 scenarios', () => {
      expect(scenarios.length).toBeGreaterThanOrEqual(25);
    });
    for (const scenario of scenarios) {
      it(scenario.name, async () => {
        const [real, fake] = await Promise.all([
          runScenario(scenario, 'qemu'),
          runScenario(scenario, 'fake'),
        ]);
        expect(fake).toEqual(real);
      });
    }
  },
);
