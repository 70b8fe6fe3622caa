/**
 * More QEMU versions from real recordings: libvirt's capability replies.
 *   pnpm schemas:libvirt               fetch (cached) + extract every x86_64 recording
 *   pnpm schemas:libvirt --fetch-only  only fill the cache (CI: the version tests read it)
 *
 * 1. Puts `tests/qemucapabilitiesdata/caps_<ver>.x86_64.replies` of Debian's libvirt source
 *    package into the gitignored cache `.cache/libvirt/` (apt-get source --download-only, only
 *    those files are unpacked).
 * 2. For each recording, writes `schemas/qemu-<major>.<minor>/query-qmp-schema.json` and a
 *    manifest naming the recording it came from — unless that version directory already holds
 *    a capture of a real binary (captures win; the recording of the same version is compared
 *    with it by a test, and different content for one version is an error there).
 * 3. Recovers real type names (names.json) against the QAPI source in the cache: the 7.2 source,
 *    then the upstream copy (QMPKIT_UPSTREAM_QAPI) for names 7.2 no longer has.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import {
  assertSameVersion,
  formatSchemaList,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  recoverNames,
  type Schema,
  schemaFromReplies,
} from '@qmpkit/codegen';

const repoRoot = path.resolve(import.meta.dirname, '../..');
export const libvirtCache = path.join(repoRoot, '.cache/libvirt');
export const recordingsDir = path.join(libvirtCache, 'qemucapabilitiesdata');

function run(command: string, args: readonly string[], cwd: string): void {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) throw new Error(`cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed:\n${(result.stderr || result.stdout).trim().slice(-1500)}`,
    );
}

/** Fetches the recordings into the cache once (idempotent). */
export function fetchRecordings(): string {
  if (existsSync(path.join(recordingsDir, 'provenance.json'))) return recordingsDir;
  mkdirSync(libvirtCache, { recursive: true });
  const work = mkdtempSync(path.join(libvirtCache, 'download-'));
  try {
    run('apt-get', ['source', '--download-only', '-qq', 'libvirt'], work);
    const dsc = readdirSync(work).find((f) => f.endsWith('.dsc'));
    const orig = readdirSync(work).find((f) => /\.orig\.tar\.(xz|gz|bz2)$/.test(f));
    if (!dsc || !orig) throw new Error('apt-get source libvirt downloaded no .dsc/.orig tarball');
    run(
      'tar',
      ['-xf', orig, '--wildcards', '*/tests/qemucapabilitiesdata/caps_*.x86_64.replies'],
      work,
    );
    const top = readdirSync(work, { withFileTypes: true }).find(
      (e) => e.isDirectory() && e.name.startsWith('libvirt-'),
    )?.name;
    const from = path.join(work, top ?? '', 'tests/qemucapabilitiesdata');
    if (!top || !existsSync(from))
      throw new Error('the libvirt tarball has no tests/qemucapabilitiesdata');
    const staging = `${recordingsDir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    renameSync(from, staging);
    writeFileSync(
      path.join(staging, 'provenance.json'),
      `${JSON.stringify({ source: 'debian', package: dsc.replace(/\.dsc$/, '') }, null, 2)}\n`,
    );
    rmSync(recordingsDir, { recursive: true, force: true });
    renameSync(staging, recordingsDir);
    return recordingsDir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export function listRecordings(dir = recordingsDir): { file: string; version: string }[] {
  return readdirSync(dir)
    .map((file) => ({ file, m: /^caps_(\d+)\.(\d+)\.(\d+)\.x86_64\.replies$/.exec(file) }))
    .filter((x): x is { file: string; m: RegExpExecArray } => x.m !== null)
    .map(({ file, m }) => ({ file, version: `${m[1]}.${m[2]}` }))
    .sort((a, b) => compareVersions(a.version, b.version));
}

export function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

function sources(): Schema[] {
  const out: Schema[] = [];
  const s72 = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
  if (!existsSync(s72)) throw new Error('no QAPI source for 7.2: run `pnpm schemas:source` first');
  out.push(loadQapiSource(s72, { qemuVersion: '7.2' }));
  const upstream = path.join(
    process.env.QMPKIT_UPSTREAM_QAPI ?? path.join(repoRoot, '../shared/qapi/qemu-upstream'),
    'qapi-schema.json',
  );
  if (existsSync(upstream)) out.push(loadQapiSource(upstream));
  return out;
}

/** Names for a capture: first source wins, later sources fill what it could not match. */
export function namesAgainst(file: string, text: string, srcs: readonly Schema[]) {
  const types: Record<string, string> = {};
  const modules: Record<string, string> = {};
  const openArguments = new Set<string>();
  const integers: Record<string, Record<string, string>> = {};
  let unmatched: readonly string[] = [];
  for (const source of srcs) {
    const r = recoverNames(file, text, source);
    const claimed = new Set(Object.values(types));
    for (const [masked, name] of Object.entries(r.types)) {
      if (types[masked] === undefined && !claimed.has(name)) types[masked] = name;
    }
    for (const [name, module] of Object.entries(r.modules)) modules[name] ??= module;
    for (const c of r.openArguments) openArguments.add(c);
    for (const [type, widths] of Object.entries(r.integers))
      integers[type] = { ...widths, ...integers[type] };
    unmatched = r.unmatched.filter((m) => types[m] === undefined);
  }
  const sortObject = (o: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(o).sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)),
    );
  return {
    types: sortObject(types),
    modules: sortObject(modules),
    openArguments: [...openArguments].sort(),
    integers: Object.fromEntries(
      Object.keys(integers)
        .sort()
        .map((t) => [t, integers[t]!]),
    ),
    unmatched,
  };
}

if (process.argv[1]?.endsWith('from-libvirt.ts')) {
  try {
    const dir = fetchRecordings();
    if (process.argv.includes('--fetch-only')) {
      console.log(
        `recordings in ${path.relative(process.cwd(), dir)}: ${listRecordings(dir)
          .map((r) => r.version)
          .join(', ')}`,
      );
      process.exit(0);
    }
    const provenance = JSON.parse(readFileSync(path.join(dir, 'provenance.json'), 'utf8')) as {
      package: string;
    };
    const srcs = sources();
    for (const { file, version } of listRecordings(dir)) {
      const outDir = path.join(repoRoot, 'schemas', `qemu-${version}`);
      const manifestFile = path.join(outDir, 'manifest.json');
      if (existsSync(manifestFile)) {
        const kind = (
          JSON.parse(readFileSync(manifestFile, 'utf8')) as { source: { kind: string } }
        ).source.kind;
        if (kind === 'capture') {
          // Two inputs for one version: they must agree (modulo build-time if-conditions).
          const recorded = schemaFromReplies(file, readFileSync(path.join(dir, file), 'utf8'));
          const text = formatSchemaList(recorded.schema);
          const fromRecording = readIntrospection({
            file,
            text,
            names: namesAgainst(file, text, srcs),
          });
          const captureText = readFileSync(path.join(outDir, 'query-qmp-schema.json'), 'utf8');
          const captureNames = JSON.parse(
            readFileSync(path.join(outDir, 'names.json'), 'utf8'),
          ) as NameMap;
          const fromCapture = readIntrospection({
            file: 'capture',
            text: captureText,
            names: captureNames,
          });
          const changes = assertSameVersion(
            version,
            { label: file, schema: fromRecording },
            { label: 'capture', schema: fromCapture },
            srcs[0],
          );
          console.log(
            `qemu-${version}: kept the capture of a real binary; ${file} agrees (${changes.length} build-configuration differences)`,
          );
          continue;
        }
      }
      const rel = `tests/qemucapabilitiesdata/${file}`;
      const recorded = schemaFromReplies(rel, readFileSync(path.join(dir, file), 'utf8'));
      if (recorded.version.micro >= 50) {
        // A development snapshot (QEMU numbers them x.y.50+, e.g. libvirt's caps_8.0.0 is
        // 7.2.50): no released QEMU has that schema, so it gets no bindings.
        console.log(`skipped ${file}: development snapshot ${recorded.version.package}`);
        continue;
      }
      const text = formatSchemaList(recorded.schema);
      mkdirSync(outDir, { recursive: true });
      writeFileSync(path.join(outDir, 'query-qmp-schema.json'), text);
      const { major, minor, micro } = recorded.version;
      const manifest = {
        qemu: {
          major,
          minor,
          micro,
          version: `${major}.${minor}.${micro}`,
          package: recorded.version.package,
        },
        target: 'x86_64',
        source: { kind: 'libvirt-recording', package: provenance.package, file: rel },
        files: {
          'query-qmp-schema.json': {
            sha256: createHash('sha256').update(text).digest('hex'),
            entries: recorded.schema.length,
          },
        },
      };
      writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
      const names = namesAgainst(`schemas/qemu-${version}/query-qmp-schema.json`, text, srcs);
      writeFileSync(
        path.join(outDir, 'names.json'),
        `${JSON.stringify({ types: names.types, modules: names.modules, openArguments: names.openArguments, integers: names.integers }, null, 1)}\n`,
      );
      console.log(
        `qemu-${version}: ${recorded.schema.length} entries from ${file}; ${Object.keys(names.types).length} names recovered, ${names.unmatched.length} left to owner+role names`,
      );
    }
  } catch (error) {
    console.error(`schemas:libvirt: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
