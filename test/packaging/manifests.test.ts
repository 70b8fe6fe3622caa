/**
 * Fast checks of every published package's manifest (the slow pack-and-install test is
 * `packaging.qemu.test.ts`): ESM-only exports with types, the source condition first and
 * dropped on publish, engines, sideEffects, and an initial changeset.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { publishedPackages, ROOT, withoutSourceCondition } from './workspace.js';

const packages = publishedPackages();

/** An export only the workspace's source condition resolves (test support): not published. */
const testOnly = (target: unknown): boolean =>
  typeof target === 'object' &&
  target !== null &&
  Object.keys(target).length === 1 &&
  '@qmpkit/source' in target;

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
      if (subpath === './package.json' || testOnly(target)) continue;
      const t = target as Record<string, unknown>;
      // A page's build (the `browser` condition) sits between types and default, and the
      // source condition then picks the browser or Node source the same way. A browser build
      // with declarations of its own (no Node types in them) is an object {types, default}
      // before the Node `types`, so TypeScript under the browser condition reads those.
      const browser = 'browser' in t;
      const ownTypes = browser && typeof t.browser === 'object' && t.browser !== null;
      expect(Object.keys(t), subpath).toEqual(
        ownTypes
          ? ['@qmpkit/source', 'browser', 'types', 'default']
          : browser
            ? ['@qmpkit/source', 'types', 'browser', 'default']
            : ['@qmpkit/source', 'types', 'default'],
      );
      if (ownTypes) {
        const b = t.browser as Record<string, unknown>;
        expect(Object.keys(b), subpath).toEqual(['types', 'default']);
        expect(b.types, subpath).toMatch(/^\.\/dist\/.*\.d\.ts$/);
        expect(b.default, subpath).toMatch(/^\.\/dist\/.*\.js$/);
      }
      const sources = browser
        ? Object.values(t['@qmpkit/source'] as Record<string, string>)
        : [t['@qmpkit/source']];
      if (browser)
        expect(Object.keys(t['@qmpkit/source'] as object), subpath).toEqual(['browser', 'default']);
      for (const source of sources) expect(source, subpath).toMatch(/^\.\/src\/.*\.ts$/);
      expect(t.types, subpath).toMatch(/^\.\/dist\/.*\.d\.ts$/);
      expect(t.default, subpath).toMatch(/^\.\/dist\/.*\.js$/);
      if (browser && !ownTypes) expect(t.browser, subpath).toMatch(/^\.\/dist\/.*\.js$/);
    }
  });

  it('publishConfig.exports is exports without the source condition (src/ is not published)', () => {
    const published = Object.fromEntries(
      Object.entries(m.exports ?? {}).filter(([, target]) => !testOnly(target)),
    );
    expect(m.publishConfig?.exports).toEqual(withoutSourceCondition(published));
    expect(m.files ?? []).not.toContain('src');
  });

  it('test-only subpaths (source condition only) are test support, never published', () => {
    for (const [subpath, target] of Object.entries(m.exports ?? {})) {
      if (!testOnly(target)) continue;
      expect(subpath).toBe('./test-support');
      expect(Object.keys(m.publishConfig?.exports ?? {})).not.toContain(subpath);
    }
  });

  it('builds itself when packed (prepack), so a tarball cannot lack dist/ (issue #12 §4)', () => {
    expect(m.scripts?.prepack).toBe('pnpm run build');
    expect(m.scripts?.build).toBeDefined();
  });

  it('carries an MIT LICENSE file, as its license field says', () => {
    expect(m.license).toBe('MIT');
    const file = path.join(pkg.dir, 'LICENSE');
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toMatch(/^MIT License\n/);
  });

  it('has an initial changeset', () => {
    const dir = path.join(ROOT, '.changeset');
    const mentioned = readdirSync(dir)
      .filter((f) => f.endsWith('.md') && f !== 'README.md')
      .some((f) => readFileSync(path.join(dir, f), 'utf8').includes(`"${m.name}":`));
    expect(mentioned).toBe(true);
  });
});
