/**
 * pnpm bench:typecheck — what importing qmpkit costs a consumer's `tsc`, from packed tarballs.
 *
 * Builds @qmpkit/schema, @qmpkit/qapi and @qmpkit/transport, packs them with `pnpm pack`,
 * installs the tarballs with npm into a scratch consumer (no workspace links, as users get
 * them), then
 * times `tsc --noEmit` (median of 3 round-robin runs; wall and CPU time, since the machine may
 * be busy; `--extendedDiagnostics` for files and memory, `--listFiles` for the declaration
 * files loaded and how many of them are generated bindings) of:
 *   (a) an empty program,
 *   (b) the one line `import { connect } from '@qmpkit/transport'` (issue #13's measurement:
 *       612 declaration files, 430 generated, 14.6 s against 3.6 s for (a) before the fix),
 *   (b2) the same import and one typed call,
 *   (c) a direct import of the default version's bindings (`@qmpkit/qapi/qemu-<default>`),
 *   (d) `import { connect } from '@qmpkit/transport/versions'` with a version range (for
 *       reference: the merged view of every version),
 * each with `skipLibCheck: false` and `true`, and prints the deltas against (a) in the same run.
 * Goals: (b) ≤ +1.5 s over (a) with skipLibCheck false, ≤ +0.5 s with true.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_QEMU_VERSION } from '@qmpkit/qapi';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const tscBin = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function run(command: string, args: readonly string[], cwd: string): string {
  const r = spawnSync(command, [...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  if (r.status !== 0)
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed:\n${r.stdout}${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

const scratch = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-typecheck-'));
try {
  // --- build and pack, as test/packaging does ------------------------------------------------
  const tarballs = path.join(scratch, 'tarballs');
  mkdirSync(tarballs);
  const qapiDir = path.join(repoRoot, 'packages/qapi');
  const transportDir = path.join(repoRoot, 'packages/transport');
  const t0 = performance.now();
  run(
    process.execPath,
    ['--conditions=@qmpkit/source', '--import', 'tsx', path.join(qapiDir, 'scripts/build.ts')],
    qapiDir,
  );
  // qapi's runtime depends on @qmpkit/schema (the table types): it is packed and installed too.
  const schemaDir = path.join(repoRoot, 'packages/schema');
  run(process.execPath, [tscBin, '-p', 'tsconfig.build.json'], schemaDir);
  run(process.execPath, [tscBin, '-p', 'tsconfig.build.json'], transportDir);
  for (const dir of [schemaDir, qapiDir, transportDir])
    run('npx', ['-y', 'pnpm@10.34.9', 'pack', '--pack-destination', tarballs], dir);
  const consumer = path.join(scratch, 'consumer');
  mkdirSync(consumer);
  writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--no-package-lock',
      '--offline',
      path.join(tarballs, 'qmpkit-schema-0.1.0.tgz'),
      path.join(tarballs, 'qmpkit-qapi-0.1.0.tgz'),
      path.join(tarballs, 'qmpkit-transport-0.1.0.tgz'),
    ],
    consumer,
  );
  // A Node consumer has @types/node (transport's declarations use it); every program gets it.
  mkdirSync(path.join(consumer, 'node_modules/@types'), { recursive: true });
  symlinkSync(
    path.join(repoRoot, 'node_modules/@types/node'),
    path.join(consumer, 'node_modules/@types/node'),
  );
  console.log(`built, packed and installed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // --- the programs ---------------------------------------------------------------------------
  const programs: [label: string, source: string][] = [
    ['(a) empty program', 'export const answer: number = 42;\n'],
    [
      "(b) import { connect } from '@qmpkit/transport'",
      "import { connect } from '@qmpkit/transport';\n",
    ],
    [
      '(b2) the same import + one typed execute',
      `import { connect } from '@qmpkit/transport';
export async function main(): Promise<boolean> {
  const qmp = await connect('unix:/run/vm/qmp.sock');
  const status = await qmp.execute('query-status');
  await qmp.close();
  return status.running;
}
`,
    ],
    [
      `(c) import type { Commands } from '@qmpkit/qapi/qemu-${DEFAULT_QEMU_VERSION}'`,
      `import type { Commands } from '@qmpkit/qapi/qemu-${DEFAULT_QEMU_VERSION}';
export type Status = Commands['query-status']['returns'];
export const running = (s: Status): boolean => s.running;
`,
    ],
    [
      "(d) connect<'5.2' | '7.2'> from '@qmpkit/transport/versions'",
      `import { connect, supports } from '@qmpkit/transport/versions';
export async function main(): Promise<boolean> {
  const qmp = await connect<'5.2' | '7.2'>('unix:/run/vm/qmp.sock');
  const jobs = await supports(qmp, 'snapshot-save');
  return jobs !== undefined;
}
`,
    ],
  ];

  interface Sample {
    /** Wall time. */
    readonly ms: number;
    /** CPU time (user + system) of the tsc process: what other load on the machine skews least. */
    readonly cpuMs: number;
    readonly files: number;
    /** Declaration files loaded (lib.*.d.ts included), and those of generated bindings. */
    readonly declarations: number;
    readonly generated: number;
    readonly memoryKiB: number;
  }
  // tsc ends with process.exit(): report its CPU time from an `exit` listener loaded first.
  const cpuProbe = `data:text/javascript,${encodeURIComponent(
    "process.on('exit', () => { const u = process.cpuUsage(); process.stdout.write('CPU: ' + (u.user + u.system) / 1000 + '\\n'); });",
  )}`;
  const setUp = (name: string, source: string, skipLibCheck: boolean): string => {
    const dir = path.join(consumer, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'main.ts'), source);
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
          skipLibCheck,
          types: ['node'],
        },
        files: ['main.ts'],
      }),
    );
    return dir;
  };
  const once = (dir: string): Sample => {
    const start = performance.now();
    const out = run(
      process.execPath,
      ['--import', cpuProbe, tscBin, '-p', dir, '--extendedDiagnostics', '--listFiles'],
      consumer,
    );
    const listed = out.split('\n').filter((line) => line.startsWith('/'));
    return {
      declarations: listed.filter((f) => f.endsWith('.d.ts')).length,
      generated: listed.filter((f) => f.endsWith('.generated.d.ts')).length,
      ms: performance.now() - start,
      cpuMs: Number(/^CPU: ([\d.]+)/m.exec(out)?.[1] ?? Number.NaN),
      files: Number(/^Files:\s+(\d+)/m.exec(out)?.[1] ?? Number.NaN),
      memoryKiB: Number(/^Memory used:\s+(\d+)K/m.exec(out)?.[1] ?? Number.NaN),
    };
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const signed = (ms: number) => `${ms >= 0 ? '+' : '-'}${secs(Math.abs(ms))}`;

  for (const skipLibCheck of [false, true]) {
    const dirs = programs.map(([, source], i) =>
      setUp(`p${i}-${skipLibCheck}`, source, skipLibCheck),
    );
    // Round robin, so a change in the machine's load hits every program alike.
    const samples: Sample[][] = programs.map(() => []);
    for (let r = 0; r < RUNS; r++)
      for (const [i, dir] of dirs.entries()) samples[i]!.push(once(dir));
    console.log(
      `\ntsc --noEmit, skipLibCheck: ${skipLibCheck} (median of ${RUNS}, round robin; Δ against (a))`,
    );
    console.log(
      `  ${'program'.padEnd(62)}   cpu      Δcpu     wall     Δwall  files  .d.ts  (gen)  memory`,
    );
    const cpu0 = median(samples[0]!.map((s) => s.cpuMs));
    const wall0 = median(samples[0]!.map((s) => s.ms));
    for (const [i, [label]] of programs.entries()) {
      const cpu = median(samples[i]!.map((s) => s.cpuMs));
      const wall = median(samples[i]!.map((s) => s.ms));
      const last = samples[i]!.at(-1)!;
      const limit = skipLibCheck ? 500 : 1500;
      const goal =
        i === 1
          ? `  goal Δ ≤ +${secs(limit)}: cpu ${cpu - cpu0 <= limit ? 'met' : 'MISSED'}, wall ${wall - wall0 <= limit ? 'met' : 'MISSED'}`
          : '';
      console.log(
        `  ${label.padEnd(62)} ${secs(cpu).padStart(7)} ${i === 0 ? ''.padStart(8) : signed(cpu - cpu0).padStart(8)} ${secs(wall).padStart(8)} ${i === 0 ? ''.padStart(8) : signed(wall - wall0).padStart(8)} ${String(last.files).padStart(5)} ${String(last.declarations).padStart(6)} ${`(${last.generated})`.padStart(6)} ${`${(last.memoryKiB / 1024).toFixed(0)} MB`.padStart(7)}${goal}`,
      );
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
