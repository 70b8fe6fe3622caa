/**
 * Builds @qmpkit/cli into dist/: compiles src/ with tsc, then copies the committed schema
 * captures (`schemas/qemu-X.Y/{query-qmp-schema,names,manifest}.json`) into dist/schemas/, so
 * an installed `qmpkit schema diff 6.2 7.2` finds them by version name.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const pkgDir = path.resolve(import.meta.dirname, '..');
const repoRoot = path.resolve(pkgDir, '../..');
const dist = path.join(pkgDir, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
  cwd: pkgDir,
  stdio: 'inherit',
});
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

const schemas = path.join(repoRoot, 'schemas');
for (const dir of readdirSync(schemas).filter((d) => /^qemu-\d+\.\d+$/.test(d))) {
  const out = path.join(dist, 'schemas', dir);
  mkdirSync(out, { recursive: true });
  for (const file of ['query-qmp-schema.json', 'names.json', 'manifest.json']) {
    const from = path.join(schemas, dir, file);
    if (existsSync(from)) cpSync(from, path.join(out, file));
  }
}

// The dashboard of `qmpkit serve`: plain files, served from beside the compiled module.
cpSync(path.join(pkgDir, 'src/web/dashboard'), path.join(dist, 'web/dashboard'), {
  recursive: true,
});
