// Throughput of the stream sink that external snapshot saves migrate into, beside the
// ceiling (the same migration into a reader that discards the bytes) and `dd` writing as
// many bytes with conv=fdatasync to the same disk, in the same run.
//
//   pnpm bench:sink [--size 1024] [--reps 5] [--accel tcg] [--no-extra]
//
// One guest (@qmpkit/testguest with `fillRam`: every RAM page above 1 MiB non-zero) is
// booted, filled and paused once; every measurement migrates that paused guest again (a
// completed migration leaves it in `postmigrate`; `cont` + `stop` lets QEMU migrate it again,
// the guest changing only a counter in between), so all variants see the same bytes. Per repetition the variants run interleaved in a rotating
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
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AccelConfig, MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import { createQcow2Guest } from '@qmpkit/testguest';
import { createStreamSink, type StreamSink } from '@qmpkit/transport/fd';
import { createTunedStreamSink } from '../../packages/transport/src/fd/stream.js';
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

function run(command: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(performance.now() - started)
        : reject(new Error(`${command} ${args.join(' ')}: ${err}`)),
    );
  });
}

/** A non-zero source of `mib` MiB in /dev/shm, so dd measures only the disk side. */
async function ddSource(): Promise<string> {
  const src = join('/dev/shm', `qmpkit-bench-sink-src-${process.pid}`);
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 0x9e3779b1) >>> 0 || 1, i);
  const h = await open(src, 'w');
  for (let i = 0; i < mib; i++) {
    chunk.writeUInt32LE(i + 1, 0);
    await h.write(chunk);
  }
  await h.close();
  return src;
}

const FILLED = /F=([0-9A-F]{8})\r\n/;
const COUNTER = /C=([0-9A-F]{8})\r\n/;

async function bootFilled(dir: string): Promise<Machine> {
  const image = await createQcow2Guest(join(dir, 'guest.qcow2'), { fillRam: true, intervalMs: 20 });
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel,
    memory: { size: mib * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: image },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
  const m = await launch(config, { consoles: ['ser0'], runDirParent: dir, launchTimeout: 120_000 });
  await m.console('ser0').expect(FILLED, { timeout: 600_000 });
  await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
  return m;
}

interface Sample {
  ms: number;
  /** CPU time of this Node process (all threads, incl. the worker and libuv's pool). */
  cpuMs: number;
  tailMs: number;
  bytes: number;
}

/** Migrates the paused guest to `uri`; resolves when `finished` does, timing both ends. */
async function migrate(m: Machine, uri: string, finished: () => Promise<number>): Promise<Sample> {
  // QEMU refuses to migrate a guest paused by a previous migration: run it for a moment.
  const status = await m.qmp.execute('query-status');
  if (status.status === 'postmigrate') {
    await m.qmp.execute('cont');
    await m.qmp.execute('stop');
  }
  const completed = m.qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
  const cpu = process.cpuUsage();
  const started = performance.now();
  await m.qmp.execute('migrate', { uri });
  await completed.wait({ timeout: 600_000 });
  const at = performance.now();
  const bytes = await finished();
  const end = performance.now();
  const used = process.cpuUsage(cpu);
  return { ms: end - started, cpuMs: (used.user + used.system) / 1000, tailMs: end - at, bytes };
}

async function discard(m: Machine, dir: string, hash: boolean): Promise<Sample> {
  const socketPath = join(dir, 'discard.sock');
  const server = net.createServer();
  try {
    let received = 0;
    let digest = '';
    const drained = new Promise<void>((resolve, reject) => {
      server.on('connection', (sock) => {
        const h = hash ? createHash('sha256') : undefined;
        sock.on('data', (c: Buffer) => {
          received += c.length;
          h?.update(c);
        });
        sock.on('end', () => {
          digest = h?.digest('hex') ?? '';
          resolve();
        });
        sock.on('error', reject);
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const s = await migrate(m, `unix:${socketPath}`, async () => {
      await drained;
      return received;
    });
    if (hash && digest.length !== 64) throw new Error('no digest');
    return s;
  } finally {
    server.close();
    await rm(socketPath, { force: true });
  }
}

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
const src = await ddSource();
const m = await bootFilled(dir);
try {
  accelUsed = m.accel;
  await m.qmp.execute('stop');
  await m.qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'events', state: true }],
  });
  await m.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
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
