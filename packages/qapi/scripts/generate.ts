/**
 * Regenerates the committed bindings of @qmpkit/qapi from the captures in `schemas/`:
 *   pnpm gen           write packages/qapi/src/gen/qemu-<ver>/*.generated.ts
 *   pnpm gen:check     regenerate in memory and fail on any difference (CI)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  emitMerged,
  emitTypeScript,
  GENERATOR_VERSION,
  type NameMap,
  readIntrospection,
  type VersionInput,
} from '@qmpkit/codegen';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const schemasDir = path.join(repoRoot, 'schemas');
const genDir = path.join(repoRoot, 'packages/qapi/src/gen');

interface Manifest {
  qemu: { version: string; major: number; minor: number };
}

export interface VersionOutput {
  readonly dirName: string;
  readonly files: Map<string, string>;
}

/** Generated files for every capture under schemas/ (`qemu-<major>.<minor>` directories). */
export function generateAll(): VersionOutput[] {
  const outputs: VersionOutput[] = [];
  const merged: VersionInput[] = [];
  const numeric = (d: string) => d.slice('qemu-'.length).split('.').map(Number) as [number, number];
  for (const dirName of readdirSync(schemasDir)
    .filter((d) => /^qemu-\d+\.\d+$/.test(d))
    .sort((a, b) => numeric(a)[0] - numeric(b)[0] || numeric(a)[1] - numeric(b)[1])) {
    const dir = path.join(schemasDir, dirName);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    const namesFile = path.join(dir, 'names.json');
    const names = existsSync(namesFile)
      ? (JSON.parse(readFileSync(namesFile, 'utf8')) as NameMap)
      : undefined;
    const input = path.join(dir, 'query-qmp-schema.json');
    const schema = readIntrospection({
      file: path.relative(repoRoot, input),
      text: readFileSync(input, 'utf8'),
      qemuVersion: manifest.qemu.version,
      ...(names ? { names } : {}),
    });
    const files = emitTypeScript(schema, {
      runtimeImport: '../../runtime/index.js',
      generatorVersion: GENERATOR_VERSION,
      inputDescription: path.relative(repoRoot, input),
      qemuVersion: manifest.qemu.version,
      docs: false,
    });
    outputs.push({ dirName, files });
    merged.push({ version: dirName.slice('qemu-'.length), schema });
  }
  outputs.push({
    dirName: 'merged',
    files: emitMerged(merged, {
      runtimeImport: '../../runtime/index.js',
      generatorVersion: GENERATOR_VERSION,
    }),
  });
  return outputs;
}

/** The `exports` map of package.json: `.`, `./qemu-<ver>` for every version, runtime, package.json. */
export function exportsFor(dirNames: readonly string[]): Record<string, unknown> {
  const entry = (src: string, dist: string) => ({
    '@qmpkit/source': `./src/${src}.ts`,
    types: `./dist/${dist}.d.ts`,
    default: `./dist/${dist}.js`,
  });
  const out: Record<string, unknown> = { '.': entry('index', 'index') };
  for (const dir of dirNames)
    out[`./${dir}`] = entry(`gen/${dir}/index.generated`, `gen/${dir}/index.generated`);
  out['./runtime-v1'] = entry('runtime/index', 'runtime/index');
  out['./package.json'] = './package.json';
  return out;
}

function main(): number {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  const started = performance.now();
  const outputs = generateAll();
  const problems: string[] = [];
  for (const { dirName, files } of outputs) {
    const outDir = path.join(genDir, dirName);
    const existing = existsSync(outDir)
      ? readdirSync(outDir).filter((f) => f.endsWith('.generated.ts'))
      : [];
    if (values.check) {
      for (const [name, text] of files) {
        const file = path.join(outDir, name);
        if (!existsSync(file)) problems.push(`missing: ${path.relative(repoRoot, file)}`);
        else if (readFileSync(file, 'utf8') !== text)
          problems.push(`differs: ${path.relative(repoRoot, file)}`);
      }
      for (const name of existing)
        if (!files.has(name))
          problems.push(`stale: ${path.relative(repoRoot, path.join(outDir, name))}`);
    } else {
      mkdirSync(outDir, { recursive: true });
      for (const name of existing) if (!files.has(name)) rmSync(path.join(outDir, name));
      for (const [name, text] of files) writeFileSync(path.join(outDir, name), text);
    }
    const bytes = [...files.values()].reduce((n, t) => n + Buffer.byteLength(t), 0);
    console.log(`${dirName}: ${files.size} files, ${(bytes / 1024).toFixed(0)} KiB`);
  }
  // package.json exports follow the generated versions; the root export is the newest.
  const pkgFile = path.join(repoRoot, 'packages/qapi/package.json');
  const pkgText = readFileSync(pkgFile, 'utf8');
  const pkg = JSON.parse(pkgText) as Record<string, unknown>;
  pkg.exports = exportsFor(outputs.map((o) => o.dirName));
  // What `pnpm pack` publishes: the same map without the source condition (src/ is not shipped).
  pkg.publishConfig = {
    ...(pkg.publishConfig as Record<string, unknown> | undefined),
    exports: JSON.parse(
      JSON.stringify(pkg.exports, (key, value: unknown) =>
        key === '@qmpkit/source' ? undefined : value,
      ),
    ),
  };
  const wanted = `${JSON.stringify(pkg, null, 2)}\n`;
  const newest = outputs.filter((o) => o.dirName !== 'merged').at(-1)?.dirName;
  const indexFile = path.join(repoRoot, 'packages/qapi/src/index.ts');
  const indexText = readFileSync(indexFile, 'utf8');
  const wantedIndex = indexText.replace(
    /from '\.\/gen\/qemu-[\d.]+\/index\.generated\.js'/,
    `from './gen/${newest}/index.generated.js'`,
  );
  for (const [file, now, want] of [
    [pkgFile, pkgText, wanted],
    [indexFile, indexText, wantedIndex],
  ] as const) {
    if (now === want) continue;
    if (values.check) problems.push(`differs: ${path.relative(repoRoot, file)}`);
    else writeFileSync(file, want);
  }
  console.log(
    `${values.check ? 'checked' : 'generated'} in ${((performance.now() - started) / 1000).toFixed(2)} s`,
  );
  if (problems.length > 0) {
    console.error(
      `generated bindings are out of date (run \`pnpm gen\`):\n  ${problems.join('\n  ')}`,
    );
    return 1;
  }
  return 0;
}

process.exitCode = main();
