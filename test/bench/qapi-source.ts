/**
 * Times the QAPI source reader (parse + semantic checks + lowering) on the real schemas,
 * beside a baseline that only reads the same files and splits them into tokens with a regex.
 *
 *   node --conditions=@qmpkit/source --import tsx test/bench/qapi-source.ts [main.json…]
 *
 * Defaults: the QEMU 7.2 source in .cache/ and the upstream copy (QMPKIT_UPSTREAM_QAPI or
 * <repo>/../shared/qapi/qemu-upstream) when present.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadQapiSource, parseQapiFile } from '@qmpkit/codegen';

const root = fileURLToPath(new URL('../../', import.meta.url));
const defaults = [
  path.join(root, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json'),
  path.join(
    process.env.QMPKIT_UPSTREAM_QAPI ?? path.join(root, '..', 'shared/qapi/qemu-upstream'),
    'qapi-schema.json',
  ),
];
const files =
  process.argv.length > 2 ? process.argv.slice(2) : defaults.filter((f) => existsSync(f));
const runs = 20;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function time(fn: () => unknown): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** The QAPI rules of a source under `qemu-X.Y/` (its QEMU version); the newest rules otherwise. */
const rulesOf = (file: string): { qemuVersion?: string } => {
  const version = /qemu-(\d+\.\d+)\//.exec(file)?.[1];
  return version ? { qemuVersion: version } : {};
};

const token = /'(?:[^'\\\n]|\\.)*'|#[^\n]*|[{}[\]:,]|true|false|\S/g;

for (const file of files) {
  const paths = parseQapiFile(file, rulesOf(file)).files.map((f) => f.path);
  const baseline = () => {
    let tokens = 0;
    for (const p of paths) tokens += readFileSync(p, 'utf8').match(token)?.length ?? 0;
    return tokens;
  };
  const cold = time(() => loadQapiSource(file, rulesOf(file)));
  const warm: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < runs; i++) {
    warm.push(time(() => loadQapiSource(file, rulesOf(file))));
    base.push(time(baseline));
  }
  const schema = loadQapiSource(file, rulesOf(file));
  const bytes = paths.reduce((n, p) => n + readFileSync(p).length, 0);
  console.log(
    `${path.relative(process.cwd(), file)}: ${paths.length} files, ${(bytes / 1024).toFixed(0)} KiB, ` +
      `${schema.types.size} types, ${schema.commands.size} commands, ${schema.events.size} events`,
  );
  console.log(
    `  loadQapiSource: first run ${cold.toFixed(1)} ms, median of ${runs} ${median(warm).toFixed(1)} ms; ` +
      `baseline (read + regex tokens) ${median(base).toFixed(1)} ms; ratio ${(median(warm) / median(base)).toFixed(1)}x`,
  );
}
