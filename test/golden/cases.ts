/**
 * The whole-file goldens of our own QAPI fixtures: which fixture makes which golden, and how it
 * is generated. Shared by golden.test.ts (vitest) and check.ts (`pnpm gen:check`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { emitTypeScript, loadQapiSource } from '@qmpkit/codegen';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const fixturesDir = path.join(repoRoot, 'test/fixtures/qapi/valid');
export const goldenDir = path.join(repoRoot, 'test/golden');

export const GOLDEN_CASES: readonly (readonly [name: string, main: string])[] = [
  ['schema', 'schema/main.json'],
  ['docs-7.2-style', 'docs-7.2-style.json'],
  ['docs-upstream-style', 'docs-upstream-style.json'],
  ['legacy-simple-union', 'legacy-simple-union.json'],
];

/** The files the generator writes for fixture `main` (relative to the fixtures folder). */
export function generateGolden(main: string): Map<string, string> {
  const schema = loadQapiSource(path.relative(repoRoot, path.join(fixturesDir, main)), {
    readFile: (file) => readFileSync(path.resolve(repoRoot, file), 'utf8'),
    // A fixture in QEMU 7.2's style is checked with 7.2's rules, the others with the newest.
    ...(main.includes('7.2') ? { qemuVersion: '7.2' } : {}),
  });
  return emitTypeScript(schema, {
    runtimeImport: '@qmpkit/qapi/runtime-v1',
    generatorVersion: 'golden',
    inputDescription: `test/fixtures/qapi/valid/${main}`,
    qemuVersion: '0.0.0-fixture',
  });
}

/** Differences between a generation and the committed golden `name` (empty: they match). */
export function compareGolden(name: string, files: ReadonlyMap<string, string>): string[] {
  const dir = path.join(goldenDir, name);
  if (!existsSync(dir)) return [`missing golden test/golden/${name}`];
  const problems: string[] = [];
  for (const [file, text] of files) {
    const golden = path.join(dir, file);
    if (!existsSync(golden)) problems.push(`missing: test/golden/${name}/${file}`);
    else if (readFileSync(golden, 'utf8') !== text)
      problems.push(`differs: test/golden/${name}/${file}`);
  }
  for (const file of readdirSync(dir))
    if (!files.has(file)) problems.push(`stale: test/golden/${name}/${file}`);
  return problems;
}
