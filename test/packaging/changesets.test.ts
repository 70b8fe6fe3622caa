/**
 * `changeset version` on a scratch copy of the workspace's manifests and `.changeset/`
 * (the work tree is never touched): the initial changesets bump every published package,
 * and the fixed group (schema + codegen + qapi + transport) moves together even when only one of
 * them has a changeset.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { publishedPackages, ROOT, workspacePackages } from './workspace.js';

const CHANGESET = path.join(ROOT, 'node_modules/@changesets/cli/bin.js');
const FIXED = ['@qmpkit/schema', '@qmpkit/codegen', '@qmpkit/qapi', '@qmpkit/transport'];
const scratches: string[] = [];
afterAll(() => {
  for (const dir of scratches) rmSync(dir, { recursive: true, force: true });
});

/** The root manifest, workspace file, `.changeset/` and every workspace package.json. */
function scratchCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-changesets-'));
  scratches.push(dir);
  for (const file of ['package.json', 'pnpm-workspace.yaml'])
    cpSync(path.join(ROOT, file), path.join(dir, file));
  cpSync(path.join(ROOT, '.changeset'), path.join(dir, '.changeset'), { recursive: true });
  for (const pkg of workspacePackages()) {
    mkdirSync(path.join(dir, pkg.rel), { recursive: true });
    cpSync(path.join(pkg.dir, 'package.json'), path.join(dir, pkg.rel, 'package.json'));
  }
  return dir;
}

function version(dir: string): void {
  const result = spawnSync(process.execPath, [CHANGESET, 'version'], {
    cwd: dir,
    encoding: 'utf8',
  });
  if (result.status !== 0)
    throw new Error(`changeset version failed:\n${result.stdout}${result.stderr}`);
}

function versions(dir: string): Record<string, string> {
  return Object.fromEntries(
    workspacePackages().map((p) => {
      const manifest = JSON.parse(readFileSync(path.join(dir, p.rel, 'package.json'), 'utf8')) as {
        name: string;
        version: string;
      };
      return [manifest.name, manifest.version];
    }),
  );
}

it('the initial changesets bump every published package; private ones stay; changelogs are written', {
  timeout: 60_000,
}, () => {
  const before = versions(ROOT);
  const dir = scratchCopy();
  version(dir);
  const after = versions(dir);
  for (const pkg of workspacePackages()) {
    const name = pkg.manifest.name;
    if (pkg.manifest.private) expect(after[name], name).toBe(before[name]);
    else {
      expect(after[name], name).not.toBe(before[name]);
      expect(existsSync(path.join(dir, pkg.rel, 'CHANGELOG.md')), name).toBe(true);
    }
  }
  expect(new Set(FIXED.map((n) => after[n])).size).toBe(1);
  // The changelog carries this wave's user-visible changes (issue #12 §4).
  const cliLog = readFileSync(path.join(dir, 'packages/cli/CHANGELOG.md'), 'utf8');
  expect(cliLog).toContain('`exec --hmp` exits 1 when the HMP command line fails');
  expect(
    readdirSync(path.join(dir, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md'),
  ).toEqual([]);
  // The work tree was not touched.
  expect(versions(ROOT)).toEqual(before);
}); // spawns `changeset version`: seconds on a busy machine

it('the fixed group moves together: a patch to transport alone bumps codegen and qapi too', () => {
  const dir = scratchCopy();
  const changesets = path.join(dir, '.changeset');
  for (const file of readdirSync(changesets))
    if (file.endsWith('.md') && file !== 'README.md') rmSync(path.join(changesets, file));
  writeFileSync(
    path.join(changesets, 'transport-fix.md'),
    '---\n"@qmpkit/transport": patch\n---\n\nA fix.\n',
  );
  const before = versions(dir);
  version(dir);
  const after = versions(dir);
  for (const name of FIXED) expect(after[name], name).toBe(bump(before['@qmpkit/transport']!));
  // A package outside the group that depends on none of them keeps its version.
  const independent = publishedPackages().find(
    (p) =>
      !FIXED.includes(p.manifest.name) &&
      !Object.keys(p.manifest.dependencies ?? {}).some((d) => FIXED.includes(d)),
  );
  if (independent) expect(after[independent.manifest.name]).toBe(before[independent.manifest.name]);
}, 60_000);

function bump(v: string): string {
  const [major, minor, patch] = v.split('.').map(Number) as [number, number, number];
  return `${major}.${minor}.${patch + 1}`;
}
