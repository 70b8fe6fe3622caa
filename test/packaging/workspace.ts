/**
 * The workspace's published packages, found from `pnpm-workspace.yaml` (so packages added
 * later are checked without editing the tests): every matched folder with a package.json
 * that is not `private`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.join(import.meta.dirname, '../..');

export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly type?: string;
  readonly sideEffects?: boolean;
  readonly engines?: Readonly<Record<string, string>>;
  readonly exports?: Readonly<Record<string, unknown>>;
  readonly publishConfig?: { readonly exports?: Readonly<Record<string, unknown>> };
  readonly files?: readonly string[];
  readonly bin?: Readonly<Record<string, string>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly scripts?: Readonly<Record<string, string>>;
  readonly license?: string;
}

export interface WorkspacePackage {
  /** Absolute folder. */
  readonly dir: string;
  /** Folder relative to the repository root. */
  readonly rel: string;
  readonly manifest: Manifest;
}

/** Folder globs of `pnpm-workspace.yaml` (`packages/*`, `codegen`, …). */
export function workspaceGlobs(): string[] {
  const text = readFileSync(path.join(ROOT, 'pnpm-workspace.yaml'), 'utf8');
  const block = /^packages:\n((?:\s+-\s+.*\n)+)/m.exec(text)?.[1] ?? '';
  return [...block.matchAll(/-\s+['"]?([^'"\n]+)['"]?/g)].map((m) => m[1]!.trim());
}

export function workspacePackages(): WorkspacePackage[] {
  const dirs: string[] = [];
  for (const glob of workspaceGlobs()) {
    if (glob.endsWith('/*')) {
      const parent = path.join(ROOT, glob.slice(0, -2));
      for (const entry of readdirSync(parent, { withFileTypes: true }))
        if (entry.isDirectory()) dirs.push(path.join(parent, entry.name));
    } else dirs.push(path.join(ROOT, glob));
  }
  return dirs
    .filter((dir) => existsSync(path.join(dir, 'package.json')))
    .map((dir) => ({
      dir,
      rel: path.relative(ROOT, dir),
      manifest: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest,
    }))
    .sort((a, b) => (a.manifest.name < b.manifest.name ? -1 : 1));
}

export function publishedPackages(): WorkspacePackage[] {
  return workspacePackages().filter((p) => p.manifest.private !== true);
}

/** `exports` without the `@qmpkit/source` condition: what consumers of the tarball see. */
export function withoutSourceCondition(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== '@qmpkit/source')
      .map(([key, inner]) => [key, withoutSourceCondition(inner)]),
  );
}
