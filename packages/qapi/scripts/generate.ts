/**
 * Generates the bindings of @qmpkit/qapi from the committed inputs in `schemas/` (captures of
 * real binaries and libvirt's recordings, each `schemas/qemu-<major>.<minor>/`). The bindings
 * are build output (gitignored): `pnpm install` runs this through the root `prepare` script,
 * and the package build runs it again into its own build tree.
 *   pnpm gen           write packages/qapi/src/gen/<dir>/*.generated.ts, the `exports` map of
 *                      package.json and the root export in src/index.ts (the bindings of the
 *                      version its DEFAULT_QEMU_VERSION names: chosen there, by hand)
 *   pnpm gen --check   generate twice and fail unless both give identical bytes; fail when
 *                      src/gen (if present), package.json or src/index.ts differ from what a
 *                      generation writes (a hand edit of generated output)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  emitMerged,
  emitTypeScript,
  GENERATOR_VERSION,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  type VersionInput,
} from '@qmpkit/codegen';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const schemasDir = path.join(repoRoot, 'schemas');
const pkgDir = path.join(repoRoot, 'packages/qapi');
export const genDir = path.join(pkgDir, 'src/gen');

interface Manifest {
  qemu: { version: string; major: number; minor: number };
  source: { kind: 'capture' | 'libvirt-recording' };
}

export interface VersionOutput {
  readonly dirName: string;
  readonly files: ReadonlyMap<string, string>;
}

export interface Generation {
  /** One entry per `schemas/qemu-*` directory (oldest first), then `merged`. */
  readonly outputs: readonly VersionOutput[];
  /**
   * The default QEMU version of the whole workspace, as `src/index.ts` names it; it must be a
   * version captured from a real binary (`source.kind: "capture"`), never a recording.
   */
  readonly defaultVersion: string;
}

const numeric = (d: string) => d.slice('qemu-'.length).split('.').map(Number) as [number, number];

/** `qemu-<major>.<minor>` directories of `schemas/`, oldest first. */
export function versionDirs(dir = schemasDir): string[] {
  return readdirSync(dir)
    .filter((d) => /^qemu-\d+\.\d+$/.test(d))
    .sort((a, b) => numeric(a)[0] - numeric(b)[0] || numeric(a)[1] - numeric(b)[1]);
}

const readManifest = (dirName: string): Manifest =>
  JSON.parse(readFileSync(path.join(schemasDir, dirName, 'manifest.json'), 'utf8')) as Manifest;

const indexFile = path.join(pkgDir, 'src/index.ts');

/**
 * The default version as `src/index.ts` names it (`DEFAULT_QEMU_VERSION = '7.2'`): the one place
 * that chooses it. The generator never picks it by itself (a new capture does not move it).
 */
export function namedDefault(indexText = readFileSync(indexFile, 'utf8')): string {
  const named = /DEFAULT_QEMU_VERSION = '(\d+\.\d+)'/.exec(indexText)?.[1];
  if (named === undefined)
    throw new Error(`${path.relative(repoRoot, indexFile)} names no DEFAULT_QEMU_VERSION`);
  return named;
}

/**
 * The default version, checked: the version `src/index.ts` names must have a schema captured
 * from a real binary (`source.kind: "capture"`), never only a recording.
 */
export function defaultVersion(
  dirs = versionDirs(),
  manifest: (dirName: string) => Pick<Manifest, 'source'> = readManifest,
  named = namedDefault(),
): string {
  const dir = `qemu-${named}`;
  if (!dirs.includes(dir))
    throw new Error(`the default QEMU version ${named} has no schemas/${dir}/`);
  if (manifest(dir).source.kind !== 'capture')
    throw new Error(
      `the default QEMU version ${named} is not a capture of a real binary (schemas/${dir} is a ${manifest(dir).source.kind})`,
    );
  return named;
}

/** `qga-<major>.<minor>` directories of `schemas/` (guest agent captures), oldest first. */
export function qgaDirs(dir = schemasDir): string[] {
  const ver = (d: string) => d.slice('qga-'.length).split('.').map(Number) as [number, number];
  return readdirSync(dir)
    .filter((d) => /^qga-\d+\.\d+$/.test(d))
    .sort((a, b) => ver(a)[0] - ver(b)[0] || ver(a)[1] - ver(b)[1]);
}

/**
 * The guest agent's schema of one version, read from its doc-free capture with the QAPI source
 * parser (the capture is QAPI syntax). Paths stay relative to the repository.
 */
export function readQgaCapture(dirName: string) {
  const manifest = JSON.parse(
    readFileSync(path.join(schemasDir, dirName, 'manifest.json'), 'utf8'),
  ) as { qemu: { version: string } };
  const file = `schemas/${dirName}/qga-schema.json`;
  const schema = loadQapiSource(file, {
    readFile: (p) => readFileSync(path.join(repoRoot, p), 'utf8'),
  });
  return { schema, file, qemuVersion: manifest.qemu.version };
}

/** `qsd-<major>.<minor>` directories of `schemas/` (qemu-storage-daemon captures), oldest first. */
export function qsdDirs(dir = schemasDir): string[] {
  const ver = (d: string) => d.slice('qsd-'.length).split('.').map(Number) as [number, number];
  return readdirSync(dir)
    .filter((d) => /^qsd-\d+\.\d+$/.test(d))
    .sort((a, b) => ver(a)[0] - ver(b)[0] || ver(a)[1] - ver(b)[1]);
}

/** The schema of one introspection capture (`schemas/<dirName>/`), with its recovered names. */
function readCapture(dirName: string) {
  const dir = path.join(schemasDir, dirName);
  const manifest = readManifest(dirName);
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
  return { schema, manifest, input };
}

/** Generated files for every capture or recording under schemas/. */
export function generateAll(): Generation {
  const outputs: VersionOutput[] = [];
  const merged: VersionInput[] = [];
  const dirs = versionDirs();
  for (const dirName of dirs) {
    const { schema, manifest, input } = readCapture(dirName);
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
  for (const dirName of qgaDirs()) {
    const { schema, file, qemuVersion } = readQgaCapture(dirName);
    const files = emitTypeScript(schema, {
      runtimeImport: '../../runtime/index.js',
      generatorVersion: GENERATOR_VERSION,
      inputDescription: file,
      qemuVersion,
      docs: false,
    });
    outputs.push({ dirName, files });
  }
  // qemu-storage-daemon: its own schema (a subset of QEMU's modules), not part of `merged`.
  for (const dirName of qsdDirs()) {
    const { schema, manifest, input } = readCapture(dirName);
    const files = emitTypeScript(schema, {
      runtimeImport: '../../runtime/index.js',
      generatorVersion: GENERATOR_VERSION,
      inputDescription: path.relative(repoRoot, input),
      qemuVersion: manifest.qemu.version,
      docs: false,
    });
    outputs.push({ dirName, files });
  }
  return { outputs, defaultVersion: defaultVersion(dirs) };
}

/** Writes a generation into `dir` (one folder per version), removing whatever else is there. */
export function writeGeneration(generation: Generation, dir: string): void {
  const wanted = new Set(generation.outputs.map((o) => o.dirName));
  if (existsSync(dir))
    for (const entry of readdirSync(dir))
      if (!wanted.has(entry)) rmSync(path.join(dir, entry), { recursive: true, force: true });
  for (const { dirName, files } of generation.outputs) {
    const outDir = path.join(dir, dirName);
    mkdirSync(outDir, { recursive: true });
    for (const name of readdirSync(outDir)) if (!files.has(name)) rmSync(path.join(outDir, name));
    for (const [name, text] of files) {
      const file = path.join(outDir, name);
      // Unchanged files keep their mtime, so tools watching src/ see only real changes.
      if (!existsSync(file) || readFileSync(file, 'utf8') !== text) writeFileSync(file, text);
    }
  }
}

/** Differences between two generations (file by file, byte for byte). */
export function compareGenerations(a: Generation, b: Generation): string[] {
  const problems: string[] = [];
  if (a.defaultVersion !== b.defaultVersion)
    problems.push(`default version: ${a.defaultVersion} vs ${b.defaultVersion}`);
  const byDir = new Map(b.outputs.map((o) => [o.dirName, o.files]));
  for (const { dirName, files } of a.outputs) {
    const other = byDir.get(dirName);
    if (other === undefined) {
      problems.push(`${dirName}: only in the first generation`);
      continue;
    }
    for (const [name, text] of files)
      if (other.get(name) !== text) problems.push(`${dirName}/${name}: differs between runs`);
    for (const name of other.keys())
      if (!files.has(name)) problems.push(`${dirName}/${name}: only in the second generation`);
  }
  return problems;
}

/** Differences between a generation and the files in `dir` (a hand edit, a stale file). */
export function compareWithDirectory(generation: Generation, dir: string): string[] {
  const problems: string[] = [];
  const rel = (file: string) => path.relative(repoRoot, file);
  const wanted = new Set(generation.outputs.map((o) => o.dirName));
  for (const entry of readdirSync(dir))
    if (!wanted.has(entry)) problems.push(`stale: ${rel(path.join(dir, entry))}`);
  for (const { dirName, files } of generation.outputs) {
    const outDir = path.join(dir, dirName);
    const existing = existsSync(outDir) ? readdirSync(outDir) : [];
    for (const [name, text] of files) {
      const file = path.join(outDir, name);
      if (!existsSync(file)) problems.push(`missing: ${rel(file)}`);
      else if (readFileSync(file, 'utf8') !== text) problems.push(`differs: ${rel(file)}`);
    }
    for (const name of existing)
      if (!files.has(name)) problems.push(`stale: ${rel(path.join(outDir, name))}`);
  }
  return problems;
}

/**
 * The `exports` map of package.json: `.`, `./qemu-<ver>` for every version, `./merged`,
 * `./qga-<ver>` for every guest agent capture, `./qsd-<ver>` for every qemu-storage-daemon
 * capture, runtime, package.json.
 */
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

/**
 * The committed files that follow the generation: package.json's `exports` (one per version)
 * and src/index.ts, whose root export and `DEFAULT_QEMU_VERSION` name the default version.
 * Returns `[file, current text, wanted text]` for each.
 */
export function derivedFiles(generation: Generation): [string, string, string][] {
  const pkgFile = path.join(pkgDir, 'package.json');
  const pkgText = readFileSync(pkgFile, 'utf8');
  const pkg = JSON.parse(pkgText) as Record<string, unknown>;
  pkg.exports = exportsFor(generation.outputs.map((o) => o.dirName));
  // What `pnpm pack` publishes: the same map without the source condition (src/ is not shipped).
  pkg.publishConfig = {
    ...(pkg.publishConfig as Record<string, unknown> | undefined),
    exports: JSON.parse(
      JSON.stringify(pkg.exports, (key, value: unknown) =>
        key === '@qmpkit/source' ? undefined : value,
      ),
    ),
  };
  const indexText = readFileSync(indexFile, 'utf8');
  const v = generation.defaultVersion;
  // The root export follows the version DEFAULT_QEMU_VERSION names.
  const wantedIndex = indexText.replace(
    /from '\.\/gen\/qemu-[\d.]+\/index\.generated\.js'/g,
    `from './gen/qemu-${v}/index.generated.js'`,
  );
  return [
    [pkgFile, pkgText, `${JSON.stringify(pkg, null, 2)}\n`],
    [indexFile, indexText, wantedIndex],
  ];
}

function main(): number {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  const started = performance.now();
  const generation = generateAll();
  const problems: string[] = [];
  if (values.check) {
    problems.push(...compareGenerations(generation, generateAll()));
    if (existsSync(genDir)) problems.push(...compareWithDirectory(generation, genDir));
  } else {
    writeGeneration(generation, genDir);
  }
  for (const { dirName, files } of generation.outputs) {
    const bytes = [...files.values()].reduce((n, t) => n + Buffer.byteLength(t), 0);
    console.log(`${dirName}: ${files.size} files, ${(bytes / 1024).toFixed(0)} KiB`);
  }
  for (const [file, now, want] of derivedFiles(generation)) {
    if (now === want) continue;
    if (values.check) problems.push(`differs: ${path.relative(repoRoot, file)}`);
    else writeFileSync(file, want);
  }
  console.log(
    `default QEMU version ${generation.defaultVersion}; ${values.check ? 'checked' : 'generated'} in ${((performance.now() - started) / 1000).toFixed(2)} s`,
  );
  if (problems.length > 0) {
    console.error(
      `generated bindings are not reproducible or were edited (run \`pnpm gen\`):\n  ${problems.join('\n  ')}`,
    );
    return 1;
  }
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename)
  process.exitCode = main();
