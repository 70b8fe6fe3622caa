/**
 * pnpm bench:codegen — prints numbers, and ratios against baselines measured in the same run.
 *
 * 1. This generator against an older one (`BENCH_BASELINE`, default 64fd8a1: the generator
 *    before issue #13's refactor), both on this tree's captures and QAPI source cache: the
 *    older `codegen/` is taken with `git archive` into a scratch dir (removed afterwards) and
 *    run on its own sources. Each generator runs in its own child process
 *    (test/bench/codegen-run.ts), alternating, `BENCH_ROUNDS` rounds (default 2); per step
 *    the best round's median of `BENCH_RUNS` (default 5) is printed, wall and CPU time, with
 *    the ratio this/baseline. Steps: capture → IR (7.2), capture → TS (7.2), every capture →
 *    TS + the merged view (what `pnpm gen` does), QAPI source → IR and → TS (7.2; needs
 *    `pnpm schemas:source`). Goal: source → TS < 2 s, and no step slower than the baseline.
 * 2. The runtime tables of 7.2 in four candidate forms (object literal, JSON.parse of the
 *    same, the packed positional form as an array literal, JSON.parse of the packed form):
 *    bytes raw / gzip and the time to compile + run + unpack a module holding them.
 * 3. `tsc --noEmit` of a consumer importing `@qmpkit/qapi/qemu-7.2` (built .d.ts, as users
 *    get it) and calling a few commands, against an empty consumer in the same run.
 *    Goal: < +1.5 s. (`pnpm bench:typecheck` measures the transport import from tarballs.)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createContext, runInContext, Script } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { buildTables, type NameMap, packTables, readIntrospection } from '@qmpkit/codegen';
import { unpackTables } from '@qmpkit/qapi/runtime-v1';
import type { CodegenTimings, StepTime } from './codegen-run.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

// --- this generator against the baseline's, same inputs, same run -------------------------
const BASELINE = process.env.BENCH_BASELINE ?? '64fd8a1';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function runGenerator(entry: string): CodegenTimings {
  const r = spawnSync(
    process.execPath,
    [
      '--conditions=@qmpkit/source',
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'codegen-run.ts'),
      entry,
      String(RUNS),
    ],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`codegen-run ${entry} failed:\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as CodegenTimings;
}

/** The baseline's `codegen/` in a scratch dir, on this tree's installed dependencies. */
function baselineTree(): { entry: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-baseline-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const tar = path.join(dir, 'codegen.tar');
    for (const [command, args] of [
      ['git', ['archive', '--format=tar', '-o', tar, BASELINE, 'codegen']],
      ['tar', ['-xf', tar, '-C', dir]],
    ] as const) {
      const r = spawnSync(command, args, { cwd: repoRoot, encoding: 'utf8' });
      if (r.status !== 0)
        throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
    }
    // Its own dependencies (typescript, commander) at this tree's catalog versions.
    symlinkSync(
      path.join(repoRoot, 'codegen/node_modules'),
      path.join(dir, 'codegen/node_modules'),
    );
    return { entry: path.join(dir, 'codegen/src/index.ts'), remove };
  } catch (error) {
    remove();
    throw error;
  }
}

{
  const baseline = baselineTree();
  try {
    const ours: CodegenTimings[] = [];
    const theirs: CodegenTimings[] = [];
    // Alternating, so a change in the machine's load hits both alike.
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(runGenerator('@qmpkit/codegen'));
      theirs.push(runGenerator(baseline.entry));
    }
    const best = (all: CodegenTimings[], step: keyof CodegenTimings): StepTime | undefined => {
      const times = all.map((t) => t[step]).filter((t) => typeof t === 'object');
      if (times.length === 0) return undefined;
      return {
        wall: Math.min(...times.map((t) => t.wall)),
        cpu: Math.min(...times.map((t) => t.cpu)),
      };
    };
    const steps: [keyof CodegenTimings, string][] = [
      ['captureToIr', 'capture → IR (7.2)'],
      ['captureToTs', 'capture → TS (7.2)'],
      ['allCapturesToTs', `every capture → TS + merged`],
      ['sourceToIr', 'QAPI source → IR (7.2)'],
      ['sourceToTs', 'QAPI source → TS (7.2, docs; goal < 2 s)'],
    ];
    console.log(
      `generator: this tree vs ${BASELINE} (best of ${ROUNDS} rounds, median of ${RUNS} runs each)`,
    );
    console.log(
      `  ${'step'.padEnd(42)} ${'this wall'.padStart(9)} ${'base wall'.padStart(9)} ${'ratio'.padStart(5)}   ${'this cpu'.padStart(9)} ${'base cpu'.padStart(9)} ${'ratio'.padStart(5)}`,
    );
    for (const [step, label] of steps) {
      const a = best(ours, step);
      const b = best(theirs, step);
      if (a === undefined || b === undefined) {
        console.log(`  ${label.padEnd(42)} skipped: no QAPI source cache (pnpm schemas:source)`);
        continue;
      }
      console.log(
        `  ${label.padEnd(42)} ${fmt(a.wall).padStart(9)} ${fmt(b.wall).padStart(9)} ${(a.wall / b.wall).toFixed(2).padStart(5)}   ${fmt(a.cpu).padStart(9)} ${fmt(b.cpu).padStart(9)} ${(a.cpu / b.cpu).toFixed(2).padStart(5)}`,
      );
    }
    const [o, t] = [ours[0]!, theirs[0]!];
    console.log(
      `  output of a full generation: this ${o.files} files, ${(o.bytes / 1024).toFixed(0)} KiB; baseline ${t.files} files, ${(t.bytes / 1024).toFixed(0)} KiB`,
    );
  } finally {
    baseline.remove();
  }
}

const capture = path.join(repoRoot, 'schemas/qemu-7.2/query-qmp-schema.json');
const captureText = readFileSync(capture, 'utf8');
const names = JSON.parse(
  readFileSync(path.join(repoRoot, 'schemas/qemu-7.2/names.json'), 'utf8'),
) as NameMap;

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
// qapi's runtime declarations import @qmpkit/schema/info (the table types): build it too.
const schemaBuild = spawnSync(process.execPath, [tscBin, '-p', 'tsconfig.build.json'], {
  cwd: path.join(repoRoot, 'packages/schema'),
  encoding: 'utf8',
});
if (schemaBuild.status !== 0)
  throw new Error(`building @qmpkit/schema failed:\n${schemaBuild.stdout}${schemaBuild.stderr}`);

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
