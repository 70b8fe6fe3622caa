/**
 * Fast checks of every published package's manifest (the slow pack-and-install test is
 * `packaging.qemu.test.ts`): ESM-only exports with types, the source condition first and
 * dropped on publish, engines, sideEffects, and an initial changeset.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { publishedPackages, ROOT, withoutSourceCondition } from './workspace.js';

const packages = publishedPackages();

it('finds the published packages from pnpm-workspace.yaml', () => {
  const names = packages.map((p) => p.manifest.name);
  expect(names).toEqual(
    expect.arrayContaining(['@qmpkit/cli', '@qmpkit/codegen', '@qmpkit/qapi', '@qmpkit/transport']),
  );
  expect(names).not.toContain('@qmpkit/tests');
});

describe.each(packages.map((p) => [p.manifest.name, p] as const))('%s', (_name, pkg) => {
  const m = pkg.manifest;
  it('is ESM with sideEffects: false and engines.node >= 20', () => {
    expect(m.type).toBe('module');
    expect(m.sideEffects).toBe(false);
    expect(m.engines?.node).toBe('>=20');
  });

  it('every export has @qmpkit/source first, then types, then default, into dist/', () => {
    for (const [subpath, target] of Object.entries(m.exports ?? {})) {
      if (subpath === './package.json') continue;
      expect(Object.keys(target as object), subpath).toEqual([
        '@qmpkit/source',
        'types',
        'default',
      ]);
      const t = target as Record<string, string>;
      expect(t['@qmpkit/source'], subpath).toMatch(/^\.\/src\/.*\.ts$/);
      expect(t.types, subpath).toMatch(/^\.\/dist\/.*\.d\.ts$/);
      expect(t.default, subpath).toMatch(/^\.\/dist\/.*\.js$/);
    }
  });

  it('publishConfig.exports is exports without the source condition (src/ is not published)', () => {
    expect(m.publishConfig?.exports).toEqual(withoutSourceCondition(m.exports));
    expect(m.files ?? []).not.toContain('src');
  });

  it('has an initial changeset', () => {
    const dir = path.join(ROOT, '.changeset');
    const mentioned = readdirSync(dir)
      .filter((f) => f.endsWith('.md') && f !== 'README.md')
      .some((f) => readFileSync(path.join(dir, f), 'utf8').includes(`"${m.name}":`));
    expect(mentioned).toBe(true);
  });
});
