/**
 * pnpm bench:codegen — prints numbers, and ratios against baselines measured in the same run.
 *
 * 1. Wall time of QEMU 7.2 QAPI source → TypeScript (parse + check + emit), median of 5.
 *    Needs the source cache (`pnpm schemas:source`). Goal < 2 s.
 * 2. Wall time of the committed capture → TypeScript (introspection path), median of 5.
 * 3. The runtime tables of 7.2 in four candidate forms (object literal, JSON.parse of the
 *    same, the packed positional form as an array literal, JSON.parse of the packed form):
 *    bytes raw / gzip and the time to compile + run + unpack a module holding them.
 * 4. `tsc --noEmit` of a consumer importing `@qmpkit/qapi/qemu-7.2` (built .d.ts, as users
 *    get it) and calling a few commands, against an empty consumer in the same run.
 *    Goal: < +1.5 s.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createContext, runInContext, Script } from 'node:vm';
import { gzipSync } from 'node:zlib';
import {
  buildTables,
  emitTypeScript,
  GENERATOR_VERSION,
  loadQapiSource,
  type NameMap,
  packTables,
  readIntrospection,
} from '@qmpkit/codegen';
import { unpackTables } from '@qmpkit/qapi/runtime-v1';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

function time(fn: () => void, runs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const emitOptions = {
  runtimeImport: '@qmpkit/qapi/runtime-v1',
  generatorVersion: GENERATOR_VERSION,
  qemuVersion: '7.2',
  docs: true,
};

const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
if (existsSync(sourceMain)) {
  let files = 0;
  const runs = time(() => {
    files = emitTypeScript(loadQapiSource(sourceMain, { qemuVersion: '7.2' }), {
      ...emitOptions,
      inputDescription: 'qapi-schema.json',
    }).size;
  }, 5);
  console.log(
    `source → TS (7.2, ${files} files):         median ${fmt(median(runs))}  runs ${runs.map(fmt).join(' ')}  (goal < 2 s)`,
  );
} else {
  console.log('source → TS: skipped, no QAPI source cache (run `pnpm schemas:source`)');
}

const capture = path.join(repoRoot, 'schemas/qemu-7.2/query-qmp-schema.json');
const captureText = readFileSync(capture, 'utf8');
const names = JSON.parse(
  readFileSync(path.join(repoRoot, 'schemas/qemu-7.2/names.json'), 'utf8'),
) as NameMap;
const introRuns = time(() => {
  emitTypeScript(readIntrospection({ file: 'capture', text: captureText, names }), {
    ...emitOptions,
    inputDescription: 'capture',
  });
}, 5);
console.log(`capture → TS (7.2):                   median ${fmt(median(introRuns))}`);

// --- runtime tables: candidate forms ---------------------------------------------------------
{
  const data = buildTables(readIntrospection({ file: 'capture', text: captureText, names }), '7.2');
  const quoted = (json: string) => `'${json.replace(/[\\']/g, '\\$&')}'`;
  const plain = JSON.stringify(data);
  const packed = JSON.stringify(packTables(data));
  const candidates: [string, string][] = [
    ['object literal', plain],
    ['JSON.parse(string)', `JSON.parse(${quoted(plain)})`],
    ['packed array literal + unpack', `unpackTables(${packed})`],
    ['JSON.parse(packed) + unpack (shipped)', `unpackTables(JSON.parse(${quoted(packed)}))`],
  ];
  const context = createContext({ unpackTables, JSON });
  console.log(
    '\nruntime tables of 7.2, per form: bytes raw / gzip, load = compile + run (+ unpack)',
  );
  for (const [label, expression] of candidates) {
    const module = `{ const tables = ${expression}; globalThis.out = tables.types.BlockdevOptions; }`;
    // A fresh source text per run (a trailing comment), so V8's compile cache cannot help.
    const runs = Array.from({ length: 15 }, (_, i) => {
      const t0 = performance.now();
      new Script(`${module}\n// run ${i} ${label}`).runInContext(context);
      return performance.now() - t0;
    });
    runInContext('delete globalThis.out', context);
    const raw = Buffer.byteLength(module);
    const gz = gzipSync(module).length;
    console.log(
      `  ${label.padEnd(38)} ${(raw / 1024).toFixed(0).padStart(5)} KiB / ${(gz / 1024).toFixed(0).padStart(3)} KiB   load median ${median(runs).toFixed(2)} ms`,
    );
  }
}

// --- tsc cost for a consumer -------------------------------------------------------------
const tscBin = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const qapiDir = path.join(repoRoot, 'packages/qapi');
const build = spawnSync(
  process.execPath,
  ['--conditions=@qmpkit/source', '--import', 'tsx', path.join(qapiDir, 'scripts/build.ts')],
  {
    encoding: 'utf8',
  },
);
if (build.status !== 0)
  throw new Error(`building @qmpkit/qapi failed:\n${build.stdout}${build.stderr}`);

const work = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-'));
try {
  const project = (name: string, source: string) => {
    const dir = path.join(work, name);
    mkdirSync(path.join(dir, 'node_modules/@qmpkit'), { recursive: true });
    symlinkSync(qapiDir, path.join(dir, 'node_modules/@qmpkit/qapi'));
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name, type: 'module', private: true }),
    );
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
          skipLibCheck: false,
          types: [],
        },
        files: ['main.ts'],
      }),
    );
    writeFileSync(path.join(dir, 'main.ts'), source);
    return dir;
  };
  const empty = project('empty', 'export const answer: number = 42;\n');
  const consumer = project(
    'consumer',
    `import type { Commands } from '@qmpkit/qapi/qemu-7.2';
declare function execute<K extends keyof Commands>(name: K, ...args: Commands[K]['args'] extends undefined ? [] : [Commands[K]['args']]): Promise<Commands[K]['returns']>;
export async function main(): Promise<string> {
  const status = await execute('query-status');
  await execute('blockdev-add', { driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'file', filename: 'disk.qcow2' } });
  const blocks = await execute('query-block');
  await execute('device_add', { driver: 'virtio-blk-pci', id: 'vd0' });
  const jobs = await execute('query-jobs');
  return status.status + blocks.length + jobs.length;
}
`,
  );
  const tsc = (dir: string) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [tscBin, '-p', dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tsc failed in ${dir}:\n${r.stdout}${r.stderr}`);
    return performance.now() - t0;
  };
  const emptyRuns: number[] = [];
  const consumerRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    emptyRuns.push(tsc(empty));
    consumerRuns.push(tsc(consumer));
  }
  const e = median(emptyRuns);
  const c = median(consumerRuns);
  console.log(`tsc --noEmit, empty consumer:         median ${fmt(e)}`);
  console.log(
    `tsc --noEmit, consumer of qemu-7.2:   median ${fmt(c)}  (+${fmt(c - e)}, ratio ${(c / e).toFixed(2)}; goal < +1.5 s)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

// --- size of the published @qmpkit/qapi ----------------------------------------------------
{
  const { readdirSync, statSync } = await import('node:fs');
  const dist = path.join(qapiDir, 'dist/gen');
  const sizeOf = (dir: string) => {
    let raw = 0;
    let gz = 0;
    for (const file of readdirSync(dir)) {
      const full = path.join(dir, file);
      if (statSync(full).isDirectory()) continue;
      const bytes = readFileSync(full);
      raw += bytes.length;
      gz += gzipSync(bytes).length;
    }
    return { raw, gz };
  };
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  console.log('\n@qmpkit/qapi dist per version (.js + .d.ts): raw / gzip');
  let total = 0;
  for (const dir of readdirSync(dist).sort()) {
    const { raw, gz } = sizeOf(path.join(dist, dir));
    total += gz;
    console.log(`  ${dir.padEnd(10)} ${kib(raw).padStart(9)} / ${kib(gz).padStart(8)}`);
  }
  console.log(`  sum of gzip sizes: ${kib(total)}`);
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json'], {
    cwd: qapiDir,
    encoding: 'utf8',
  });
  if (pack.status === 0) {
    const [info] = JSON.parse(pack.stdout) as {
      size: number;
      unpackedSize: number;
      entryCount: number;
    }[];
    if (info)
      console.log(
        `  npm pack: ${kib(info.size)} packed, ${kib(info.unpackedSize)} unpacked, ${info.entryCount} files`,
      );
  }
}
