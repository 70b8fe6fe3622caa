/**
 * Every published package has a README with a runnable example that CI type-checks: each
 * `examples/*.ts` file of a package must appear verbatim as a ```ts block of its README, and
 * the root tsconfig (`pnpm typecheck`) compiles the examples directories.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const packageDirs = [
  'codegen',
  ...readdirSync(path.join(repoRoot, 'packages')).map((name) => `packages/${name}`),
].filter((dir) => existsSync(path.join(repoRoot, dir, 'package.json')));

function published(dir: string): boolean {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, dir, 'package.json'), 'utf8')) as {
    private?: boolean;
  };
  return pkg.private !== true;
}

describe.each(packageDirs.filter(published))('%s', (dir) => {
  it('has a README whose ts blocks include every example file verbatim', () => {
    const readmePath = path.join(repoRoot, dir, 'README.md');
    expect(existsSync(readmePath), `${dir}/README.md`).toBe(true);
    const readme = readFileSync(readmePath, 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    const examplesDir = path.join(repoRoot, dir, 'examples');
    const examples = existsSync(examplesDir)
      ? readdirSync(examplesDir).filter((f) => f.endsWith('.ts'))
      : [];
    expect(examples.length, `${dir}/examples/*.ts`).toBeGreaterThan(0);
    for (const file of examples) {
      const text = readFileSync(path.join(examplesDir, file), 'utf8');
      expect(blocks, `${dir}/examples/${file} is not a block of the README`).toContain(text);
    }
  });

  it('has its examples directory type-checked by the root tsconfig', () => {
    const tsconfig = readFileSync(path.join(repoRoot, 'tsconfig.json'), 'utf8');
    const covered =
      tsconfig.includes(`"${dir}/examples"`) ||
      (dir.startsWith('packages/') && tsconfig.includes('"packages/*/examples"'));
    expect(covered).toBe(true);
  });
});
