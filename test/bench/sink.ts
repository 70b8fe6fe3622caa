// Throughput of the stream sink that external snapshot saves migrate into, beside the
// ceiling (the same migration into a reader that discards the bytes) and `dd` writing as
// many bytes with conv=fdatasync to the same disk, in the same run.
//
//   pnpm bench:sink [--size 1024] [--reps 5] [--accel tcg] [--no-extra]
//
// One guest (@qmpkit/testguest with `fillRam`: every RAM page above 1 MiB non-zero) is
// booted, filled and paused once; every measurement migrates that paused guest again (a
// completed migration leaves it in `postmigrate`; `cont` + `stop` lets QEMU migrate it again,
// the guest changing only a counter in between), so all variants see the same bytes. Per
// repetition the variants run interleaved in a rotating
// order; the table prints medians and each one's ratio to the discarding reader of the same
// run. Variants:
//   discard        QEMU → UNIX socket → Node reader that drops the bytes (the ceiling)
//   discard+sha    the same reader also hashing every chunk with SHA-256 on the main thread
//   old sink       createStreamSink as of c62bc10 (hash on the main thread, writev batches)
//   new sink       the current createStreamSink: hashing and writevSync on a worker thread,
//                  a background fdatasync every 64 MiB
//   new nosync     the same without the periodic fdatasync
//   new sync16M    the same with a background fdatasync every 16 MiB
// (Earlier runs also measured the worker writing through libuv's thread pool with async
// fs.writev: 3.75 s median for 1 GiB against 2.71 s for the old sink and 2.14 s for
// writevSync on the worker, in the same run.)
// Sink times run from `migrate` to `done` (EOF, fsync of file and directory, rename);
// "tail" is the part after QEMU reported MIGRATION completed.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import type { Machine } from '@qmpkit/machine';
import { createStreamSink, type StreamSink } from '@qmpkit/transport/fd';
import { createTunedStreamSink } from '../../packages/transport/src/fd/stream.js';
import {
  bootFilled,
  ddSource,
  discard,
  migrate,
  prepareMigration,
  run,
  type Sample,
} from './filled-guest.js';
import { createOldStreamSink } from './sink-old.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    reps: { type: 'string', default: '5' },
    accel: { type: 'string', default: 'tcg' },
    'no-extra': { type: 'boolean', default: false },
  },
});
const mib = Number(values.size);
const reps = Number(values.reps);
const accel: AccelConfig[] = values.accel.split(',').filter((a) => a !== '');

async function sink(
  m: Machine,
  dir: string,
  create: (o: { file: string }) => Promise<StreamSink>,
): Promise<Sample> {
  const file = join(dir, 'state.bin');
  const s = await create({ file });
  try {
    return await migrate(m, s.uri, async () => (await s.done).bytes);
  } finally {
    s.abort();
    await rm(file, { force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};
const f2 = (n: number) => n.toFixed(2);
const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

const variants: { name: string; run: (m: Machine, dir: string) => Promise<Sample> }[] = [
  { name: 'discard', run: (m, d) => discard(m, d, false) },
  ...(values['no-extra']
    ? []
    : [{ name: 'discard+sha', run: (m: Machine, d: string) => discard(m, d, true) }]),
  { name: 'old sink', run: (m, d) => sink(m, d, createOldStreamSink) },
  { name: 'new sink', run: (m, d) => sink(m, d, createStreamSink) },
  ...(values['no-extra']
    ? []
    : [
        {
          name: 'new nosync',
          run: (m: Machine, d: string) =>
            sink(m, d, (o) => createTunedStreamSink(o, { syncEvery: 0 })),
        },
        {
          name: 'new sync16M',
          run: (m: Machine, d: string) =>
            sink(m, d, (o) => createTunedStreamSink(o, { syncEvery: 16 * MiB })),
        },
      ]),
];

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-sink-'));
const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
const ratios = new Map<string, number[]>(variants.map((v) => [v.name, []]));
const dd: number[] = [];
let accelUsed = '';
console.log(`load average before ${loadavg().map(f2).join(' ')}`);
const src = await ddSource(mib, 'sink');
const m = await bootFilled(dir, 'guest', mib, accel);
try {
  accelUsed = m.accel;
  await prepareMigration(m);
  // One unmeasured pass warms QEMU's migration path and the page cache.
  await discard(m, dir, false);
  for (let r = 0; r < reps; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    const round = new Map<string, Sample>();
    for (const v of order) {
      if (!v) continue;
      const s = await v.run(m, dir);
      round.set(v.name, s);
      samples.get(v.name)?.push(s);
    }
    const ceiling = round.get('discard')?.ms ?? Number.NaN;
    for (const [name, s] of round) ratios.get(name)?.push(ceiling / s.ms);
    const ddFile = join(dir, 'dd.bin');
    dd.push(
      await run('dd', [`if=${src}`, `of=${ddFile}`, 'bs=4M', 'conv=fdatasync', 'status=none']),
    );
    await rm(ddFile, { force: true });
    console.log(
      `  rep ${r + 1}: ${[...round].map(([n, s]) => `${n} ${f2(s.ms / 1000)} s`).join(', ')}, dd ${f2((dd.at(-1) ?? 0) / 1000)} s`,
    );
  }
} finally {
  await m.stop().catch(() => m.kill());
  await rm(src, { force: true });
  await rm(dir, { recursive: true, force: true });
}

const ddMs = median(dd);
const ddW = mibps(mib * MiB, ddMs);
console.log(
  `\nStream sink, QEMU 7.2, accelerator ${accelUsed}, ${mib} MiB paused guest (RAM filled with non-zero pages), files in ${tmpdir()}, median of ${reps}`,
);
console.log(`dd write conv=fdatasync ${f2(ddMs / 1000)} s (${ddW.toFixed(0)} MiB/s)`);
console.log(
  `  ${'variant'.padEnd(12)} ${'s'.padStart(6)} ${'MiB/s'.padStart(6)} ${'×ceiling'.padStart(9)} ${'×dd-w'.padStart(6)} ${'tail s'.padStart(7)} ${'node cpu s'.padStart(10)} ${'MiB'.padStart(7)}`,
);
for (const v of variants) {
  const ss = samples.get(v.name) ?? [];
  const ms = median(ss.map((s) => s.ms));
  const bytes = median(ss.map((s) => s.bytes));
  console.log(
    `  ${v.name.padEnd(12)} ${f2(ms / 1000).padStart(6)} ${mibps(bytes, ms).toFixed(0).padStart(6)} ${f2(median(ratios.get(v.name) ?? [])).padStart(9)} ${f2(mibps(bytes, ms) / ddW).padStart(6)} ${f2(median(ss.map((s) => s.tailMs)) / 1000).padStart(7)} ${f2(median(ss.map((s) => s.cpuMs)) / 1000).padStart(10)} ${(bytes / MiB).toFixed(1).padStart(7)}`,
  );
}
console.log(
  `(×ceiling: median over repetitions of discard time / variant time in the same repetition)`,
);
console.log(`load average after ${loadavg().map(f2).join(' ')}`);
