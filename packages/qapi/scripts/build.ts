/**
 * Builds @qmpkit/qapi into dist/:
 *   1. copies src/ to build-src/ (gitignored), without tests and without src/gen;
 *   2. generates the bindings from the committed inputs in schemas/ into build-src/gen (the
 *      bindings are build output: whatever src/gen holds, edited or stale, never ships);
 *   3. for every QEMU version whose QAPI source is in the cache (`pnpm schemas:source`),
 *      regenerates that version's bindings from the committed capture enriched with QEMU's
 *      docs (JSDoc), so the built package — never the repository — carries QEMU's prose;
 *   4. compiles build-src/ with tsc and writes dist/LICENSE-NOTES.md saying what it contains.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  emitTypeScript,
  GENERATOR_VERSION,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  withSourceDocs,
} from '@qmpkit/codegen';
import {
  derivedFiles,
  generateAll,
  qgaDirs,
  readQgaCapture,
  versionDirs,
  writeGeneration,
} from './generate.js';

const pkgDir = path.resolve(import.meta.dirname, '..');
const repoRoot = path.resolve(pkgDir, '../..');
const buildSrc = path.join(pkgDir, 'build-src');

rmSync(buildSrc, { recursive: true, force: true });
rmSync(path.join(pkgDir, 'dist'), { recursive: true, force: true });
const srcGen = path.join(pkgDir, 'src', 'gen');
cpSync(path.join(pkgDir, 'src'), buildSrc, {
  recursive: true,
  filter: (src) => !/\.test(-d)?\.ts$/.test(src) && src !== srcGen,
});
const generation = generateAll();
writeGeneration(generation, path.join(buildSrc, 'gen'));
for (const [file, now, want] of derivedFiles(generation))
  if (now !== want) {
    console.error(
      `${path.relative(repoRoot, file)} does not follow schemas/ (run \`pnpm gen\` first)`,
    );
    process.exit(1);
  }

const withDocs: string[] = [];
for (const dirName of versionDirs()) {
  const version = dirName.slice('qemu-'.length);
  const sourceMain = path.join(repoRoot, `.cache/qapi-source/${dirName}/qapi/qapi-schema.json`);
  if (!existsSync(sourceMain)) continue;
  const schemaDir = path.join(repoRoot, 'schemas', dirName);
  const manifest = JSON.parse(readFileSync(path.join(schemaDir, 'manifest.json'), 'utf8')) as {
    qemu: { version: string };
  };
  const capture = readIntrospection({
    file: `schemas/${dirName}/query-qmp-schema.json`,
    text: readFileSync(path.join(schemaDir, 'query-qmp-schema.json'), 'utf8'),
    names: JSON.parse(readFileSync(path.join(schemaDir, 'names.json'), 'utf8')) as NameMap,
    qemuVersion: manifest.qemu.version,
  });
  const schema = withSourceDocs(capture, loadQapiSource(sourceMain, { qemuVersion: version }));
  const files = emitTypeScript(schema, {
    runtimeImport: '../../runtime/index.js',
    generatorVersion: GENERATOR_VERSION,
    inputDescription: `schemas/${dirName}/query-qmp-schema.json + QAPI source ${version} (docs)`,
    qemuVersion: manifest.qemu.version,
    docs: true,
  });
  const out = path.join(buildSrc, 'gen', dirName);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const [name, text] of files) writeFileSync(path.join(out, name), text);
  withDocs.push(version);
}

// The guest agent's bindings: the committed doc-free capture, enriched with the docs of the
// cached qga source (`pnpm schemas:source --release bookworm|trixie`) when it is there.
for (const dirName of qgaDirs()) {
  const version = dirName.slice('qga-'.length);
  const sourceMain = path.join(repoRoot, `.cache/qapi-source/qemu-${version}/qga/qapi-schema.json`);
  if (!existsSync(sourceMain)) continue;
  const { schema: capture, file, qemuVersion } = readQgaCapture(dirName);
  const schema = withSourceDocs(capture, loadQapiSource(sourceMain, { qemuVersion: version }));
  const files = emitTypeScript(schema, {
    runtimeImport: '../../runtime/index.js',
    generatorVersion: GENERATOR_VERSION,
    inputDescription: `${file} + qga source ${version} (docs)`,
    qemuVersion,
    docs: true,
  });
  const out = path.join(buildSrc, 'gen', dirName);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const [name, text] of files) writeFileSync(path.join(out, name), text);
  withDocs.push(`qga ${version}`);
}

const tsc = spawnSync(
  process.execPath,
  [
    path.join(repoRoot, 'node_modules/typescript/bin/tsc'),
    '-p',
    path.join(pkgDir, 'tsconfig.build.json'),
  ],
  {
    stdio: 'inherit',
  },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

writeFileSync(
  path.join(pkgDir, 'dist/LICENSE-NOTES.md'),
  `# What this build of @qmpkit/qapi contains

The code of @qmpkit/qapi is MIT-licensed. Its bindings are generated from QEMU's
introspection (\`query-qmp-schema\`) captured by qmpkit's own scripts, and (\`qga-*\`) from
doc-free structural captures of the guest agent's schema made by qmpkit's own scripts.

${
  withDocs.length > 0
    ? `This build also carries QEMU's QAPI documentation in the JSDoc comments of the bindings for
QEMU ${withDocs.join(', ')}. That documentation is part of QEMU's QAPI schema source, written by
the QEMU project and licensed GPL-2.0-or-later; those comments remain under that license.`
    : `This build carries no QEMU documentation (the QAPI source was not available at build time).`
}
`,
);
console.log(
  `@qmpkit/qapi built${withDocs.length > 0 ? ` with QEMU docs for ${withDocs.join(', ')}` : ' without QEMU docs'}`,
);
