/**
 * pnpm bench:typecheck — what importing qmpkit costs a consumer's `tsc`, from packed tarballs.
 *
 * Builds @qmpkit/qapi and @qmpkit/transport, packs them with `pnpm pack`, installs the
 * tarballs with npm into a scratch consumer (no workspace links, as users get them), then
 * times `tsc --noEmit` (median of 3, with `--extendedDiagnostics` for files and memory) of:
 *   (a) an empty program,
 *   (b) `import { connect } from '@qmpkit/transport'` and one typed call,
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
  run(process.execPath, [tscBin, '-p', 'tsconfig.build.json'], transportDir);
  for (const dir of [qapiDir, transportDir])
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
    readonly ms: number;
    readonly files: number;
    readonly memoryKiB: number;
  }
  const measure = (name: string, source: string, skipLibCheck: boolean): Sample => {
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
    const samples: Sample[] = [];
    for (let i = 0; i < RUNS; i++) {
      const start = performance.now();
      const out = run(process.execPath, [tscBin, '-p', dir, '--extendedDiagnostics'], consumer);
      const ms = performance.now() - start;
      const files = Number(/^Files:\s+(\d+)/m.exec(out)?.[1] ?? Number.NaN);
      const memoryKiB = Number(/^Memory used:\s+(\d+)K/m.exec(out)?.[1] ?? Number.NaN);
      samples.push({ ms, files, memoryKiB });
    }
    return [...samples].sort((a, b) => a.ms - b.ms)[Math.floor(samples.length / 2)]!;
  };

  for (const skipLibCheck of [false, true]) {
    console.log(`\ntsc --noEmit, skipLibCheck: ${skipLibCheck} (median of ${RUNS})`);
    let base: Sample | undefined;
    for (const [index, [label, source]] of programs.entries()) {
      const s = measure(`p${index}-${skipLibCheck}`, source, skipLibCheck);
      base ??= s;
      const delta = s.ms - base.ms;
      const goal =
        index === 1
          ? `  (goal ≤ +${skipLibCheck ? '0.5' : '1.5'} s: ${delta <= (skipLibCheck ? 500 : 1500) ? 'met' : 'MISSED'})`
          : '';
      console.log(
        `  ${label.padEnd(62)} ${(s.ms / 1000).toFixed(2).padStart(6)} s  ${
          index === 0
            ? '        '
            : `${delta >= 0 ? '+' : '-'}${(Math.abs(delta) / 1000).toFixed(2)} s`
        }  ${String(s.files).padStart(4)} files  ${(s.memoryKiB / 1024).toFixed(0).padStart(5)} MB${goal}`,
      );
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
