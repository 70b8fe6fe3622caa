/**
 * Whole-file goldens: each valid QAPI fixture (our own schemas, covering every construct)
 * is generated and compared with the files committed under test/golden/<fixture>/.
 * The goldens are type-checked with the rest of the repository (`pnpm typecheck`), so they
 * also prove the output compiles. Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 pnpm vitest run test/golden`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { emitTypeScript, loadQapiSource } from '@qmpkit/codegen';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const fixtures = path.join(repoRoot, 'test/fixtures/qapi/valid');
const update = process.env.UPDATE_GOLDEN === '1';

const cases: [name: string, main: string][] = [
  ['schema', 'schema/main.json'],
  ['docs-7.2-style', 'docs-7.2-style.json'],
  ['docs-upstream-style', 'docs-upstream-style.json'],
  ['legacy-simple-union', 'legacy-simple-union.json'],
];

describe('golden output of the QAPI fixtures', () => {
  it('covers every valid fixture', () => {
    const mains = readdirSync(fixtures, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? `${e.name}/main.json` : e.name,
    );
    expect(mains.sort()).toEqual(cases.map(([, main]) => main).sort());
  });

  it.each(cases)('%s', (name, main) => {
    const schema = loadQapiSource(path.relative(repoRoot, path.join(fixtures, main)), {
      readFile: (file) => readFileSync(path.resolve(repoRoot, file), 'utf8'),
    });
    const files = emitTypeScript(schema, {
      runtimeImport: '@qmpkit/qapi/runtime-v1',
      generatorVersion: 'golden',
      inputDescription: `test/fixtures/qapi/valid/${main}`,
      qemuVersion: '0.0.0-fixture',
    });
    const dir = path.join(repoRoot, 'test/golden', name);
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
