/**
 * `pnpm gen:check`, second half: the goldens of our own fixtures match a fresh generation.
 * Regenerate them after an intended change with `UPDATE_GOLDEN=1 pnpm vitest run test/golden`.
 */
import { compareGolden, GOLDEN_CASES, generateGolden } from './cases.js';

const problems = GOLDEN_CASES.flatMap(([name, main]) => compareGolden(name, generateGolden(main)));
if (problems.length > 0) {
  console.error(
    `goldens differ from the generator's output (UPDATE_GOLDEN=1 pnpm vitest run test/golden after an intended change):\n  ${problems.join('\n  ')}`,
  );
  process.exitCode = 1;
} else {
  console.log(`goldens: ${GOLDEN_CASES.length} fixtures match`);
}
