/**
 * Whole-file goldens: each valid QAPI fixture (our own schemas, covering every construct)
 * is generated and compared with the files committed under test/golden/<fixture>/.
 * The goldens are type-checked with the rest of the repository (`pnpm typecheck`), so they
 * also prove the output compiles; `pnpm gen:check` compares them too (test/golden/check.ts).
 * Regenerate after an intended change with `UPDATE_GOLDEN=1 pnpm vitest run test/golden`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturesDir, GOLDEN_CASES, generateGolden, goldenDir } from './cases.js';

const update = process.env.UPDATE_GOLDEN === '1';

describe('golden output of the QAPI fixtures', () => {
  it('covers every valid fixture', () => {
    const mains = readdirSync(fixturesDir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? `${e.name}/main.json` : e.name,
    );
    expect(mains.sort()).toEqual(GOLDEN_CASES.map(([, main]) => main).sort());
  });

  it.each(GOLDEN_CASES)('%s', (name, main) => {
    const files = generateGolden(main);
    const dir = path.join(goldenDir, name);
    if (update) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const [file, text] of files) writeFileSync(path.join(dir, file), text);
    }
    expect(existsSync(dir), `missing golden ${dir}; run with UPDATE_GOLDEN=1`).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([...files.keys()].sort());
    for (const [file, text] of files) {
      expect(text, `test/golden/${name}/${file}`).toBe(readFileSync(path.join(dir, file), 'utf8'));
    }
  });
});
