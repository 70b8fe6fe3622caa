// Save and cold-load times of the snapshot strategies per QEMU binary, next to `dd` write +
// fdatasync and `dd` O_DIRECT read of the same size on the same disk, in the same run.
//
//   pnpm bench:snapshots [--qemu 7.2,10.0] [--sizes 128,1024] [--quick] [--accel tcg]
//
// The guest is @qmpkit/testguest with `fillRam`: every RAM page above 1 MiB holds a
// different non-zero value, so the whole RAM is really in the state (nothing is skipped as a
// zero page). Each case gets a fresh VM: boot, fill, pause, save, load, check that the guest
// continues. Per binary: internal-hmp, internal-jobs, external in the format that binary
// picks by default, external live (background-snapshot); on a QEMU whose live schema has
// mapped-ram (10.0) also external stream (`portable`), mapped-ram on one thread,
// mapped-ram + 4 multifd channels, and the same saved with direct-io. Every external state
// file is loaded cold twice where the format allows: buffered and with direct-io.
//
// "Save" is the state written and fsynced (the `save` phase: for the stream it includes the
// inline SHA-256; for mapped-ram the file is read back for its hash beside the fsync, and
// "hash s" is what that takes beyond the fsync);
// the whole call (overlays, pause, manifest commit) is shown too. "Load" is QEMU's incoming
// migration (the `load` phase) with `verify: 'quick'` (a SHA-256 pass would warm the cache);
// before every load each file of the store and the disk image is evicted from the page cache
// with `dd iflag=nocache count=0` (posix_fadvise DONTNEED on clean pages: per file, no root,
// no global drop_caches on a shared machine) and `fincore` confirms nothing stayed resident.
// Baselines: `dd` from a non-zero source in /dev/shm to a file beside the store with
// `conv=fdatasync`, and back with `iflag=direct` (median of 3).
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import type { Machine } from '@qmpkit/machine';
import {
  type LoadResult,
  type MappedRamTuning,
  mappedRamSupport,
  openSnapshots,
  type SaveResult,
  type StrategyKind,
} from '@qmpkit/snapshots';
import { launchQemu, QEMU_10, QEMU_SYSTEM, type QemuBinary } from '@qmpkit/testguest/test-support';
import { bootFilled, COUNTER, ddSource, run } from './filled-guest.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    qemu: { type: 'string', default: '7.2,10.0' },
    accel: { type: 'string', default: 'tcg' },
  },
});
const sizes = (values.sizes ?? (values.quick ? '128' : '1024')).split(',').map(Number);
const accel: AccelConfig[] = values.accel.split(',').filter((a) => a !== '');
const label = (b: QemuBinary) => `${b.version?.major}.${b.version?.minor}`;
const binaries = values.qemu.split(',').map((want) => {
  const found = [QEMU_SYSTEM, QEMU_10].find((b) => label(b) === want || b.id === want);
  if (found === undefined)
    throw new Error(`--qemu ${want}: known here are ${label(QEMU_SYSTEM)} and ${label(QEMU_10)}`);
  return found;
});
const exec = promisify(execFile);

async function ddBaseline(dir: string, mib: number): Promise<{ writeMs: number; readMs: number }> {
  const src = await ddSource(mib, 'snapshots');
  const dst = join(dir, 'dd.bin');
  try {
    const writeMs = await run('dd', [
      `if=${src}`,
      `of=${dst}`,
      'bs=4M',
      'conv=fdatasync',
      'status=none',
    ]);
    const readMs = await run('dd', [
      `if=${dst}`,
      'of=/dev/null',
      'bs=4M',
      'iflag=direct',
      'status=none',
    ]);
    return { writeMs, readMs };
  } finally {
    await rm(src, { force: true });
    await rm(dst, { force: true });
  }
}

/** Evicts every file below `dirs` from the page cache; returns the bytes still resident. */
async function evict(files: readonly string[]): Promise<number> {
  let resident = 0;
  for (const f of files) {
    await run('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    const { stdout } = await exec('fincore', ['--bytes', '--noheadings', '--output', 'RES', f]);
    resident += Number(stdout.trim()) || 0;
  }
  return resident;
}

async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true })) {
    const f = join(dir, e);
    if ((await stat(f)).isFile()) out.push(f);
  }
  return out;
}

interface Case {
  readonly label: string;
  readonly kind: StrategyKind;
  readonly live?: boolean;
  readonly portable?: boolean;
  readonly save?: MappedRamTuning;
  /** Load variants (label → tuning); one plain load when absent. */
  readonly loads?: readonly (readonly [string, MappedRamTuning])[];
}

interface Row {
  qemu: string;
  size: number;
  label: string;
  format: string;
  saveMs: number;
  checksumMs: number;
  totalMs: number;
  loads: { label: string; ms: number; resident: number; ok: boolean }[];
  bytes: number;
  allocated: number;
}

const f2 = (n: number) => (n / 1000).toFixed(2);
const loadBoth: readonly (readonly [string, MappedRamTuning])[] = [
  ['buffered', { directIo: false }],
  ['direct-io', { directIo: true }],
];

function casesFor(mappedRam: boolean): Case[] {
  const common: Case[] = [
    { label: 'internal-hmp', kind: 'internal-hmp' },
    { label: 'internal-jobs', kind: 'internal-jobs' },
  ];
  if (!mappedRam)
    return [
      ...common,
      { label: 'external stream', kind: 'external' },
      { label: 'external live', kind: 'external', live: true },
    ];
  return [
    ...common,
    { label: 'ext stream (portable)', kind: 'external', portable: true },
    { label: 'ext live (stream)', kind: 'external', live: true },
    {
      label: 'ext mapped-ram 1 thread',
      kind: 'external',
      save: { multifdChannels: 0, directIo: false },
      loads: [['1 thread', { multifdChannels: 0, directIo: false }]],
    },
    {
      label: 'ext mapped-ram+multifd4',
      kind: 'external',
      save: { multifdChannels: 4, directIo: false },
      loads: loadBoth,
    },
    {
      label: 'ext mapped-ram+mfd4+dio',
      kind: 'external',
      save: { multifdChannels: 4, directIo: true },
      loads: loadBoth,
    },
    { label: 'ext default', kind: 'external', loads: [['default', {}]] },
  ];
}

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-snapshots-'));
const rows: Row[] = [];
const baselines = new Map<number, { writeMs: number; readMs: number }>();
const accels = new Map<string, string>();
try {
  console.log(
    `load average before ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  );
  for (const mib of sizes) {
    const runs = [
      await ddBaseline(dir, mib),
      await ddBaseline(dir, mib),
      await ddBaseline(dir, mib),
    ];
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] ?? 0;
    baselines.set(mib, {
      writeMs: med(runs.map((r) => r.writeMs)),
      readMs: med(runs.map((r) => r.readMs)),
    });
    for (const binary of binaries) {
      let mappedRam: boolean | undefined;
      let i = 0;
      for (;;) {
        const cases = casesFor(mappedRam ?? false);
        const c = cases[i];
        if (c === undefined) break;
        i++;
        const name = `${binary.id}-${mib}-${i}`;
        const m: Machine = await bootFilled(dir, name, mib, accel, launchQemu(binary));
        accels.set(label(binary), m.accel);
        try {
          const store = join(dir, `${name}-store`);
          const snaps = await openSnapshots(m, { dir: store, strategy: c.kind });
          if (mappedRam === undefined) {
            mappedRam = (await mappedRamSupport(m.qmp)).mappedRam;
          }
          await m.qmp.execute('stop');
          const saved: SaveResult = await snaps.save('s', {
            ...(c.live ? { live: true } : {}),
            ...(c.portable ? { portable: true } : {}),
            ...(c.save ? { mappedRam: c.save } : {}),
          });
          const enc = saved.snapshot.stateFile?.encoding;
          const format =
            c.kind !== 'external'
              ? 'qcow2 vmstate'
              : enc?.format === 'mapped-ram'
                ? `mapped-ram mfd=${enc.multifdChannels}${enc.directIo ? ' dio' : ''}`
                : 'stream';
          const loads: Row['loads'] = [];
          for (const [loadLabel, tuning] of c.loads ?? [['plain', {}] as const]) {
            const files = [...(await filesBelow(store)), ...(await imageFiles(m))];
            const resident = await evict(files);
            const loaded: LoadResult = await snaps.load('s', {
              resume: false,
              ...(c.kind === 'external' ? { verify: 'quick' as const } : {}),
              ...(c.kind === 'external' && enc?.format === 'mapped-ram'
                ? { mappedRam: tuning }
                : {}),
            });
            m.console('ser0').read();
            await m.qmp.execute('cont');
            let ok = true;
            await m
              .console('ser0')
              .expect(COUNTER, { timeout: 60_000 })
              .catch(() => {
                ok = false;
              });
            await m.qmp.execute('stop');
            loads.push({
              label: loadLabel,
              ms: loaded.timings.phases.load ?? loaded.timings.totalMs,
              resident,
              ok,
            });
          }
          const file = saved.snapshot.stateFile?.path;
          const st = file ? await stat(file) : undefined;
          rows.push({
            qemu: label(binary),
            size: mib,
            label: c.label,
            format,
            saveMs: saved.timings.phases.save ?? saved.timings.totalMs,
            checksumMs: saved.timings.phases.checksum ?? 0,
            totalMs: saved.timings.totalMs,
            loads,
            bytes: saved.bytesWritten,
            allocated: st ? st.blocks * 512 : saved.bytesWritten,
          });
          console.log(`  done: QEMU ${label(binary)} ${mib} MiB ${c.label}`);
        } finally {
          await m.stop().catch(() => m.kill());
        }
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** The file nodes the VM runs on (its disk chain), to evict before an internal load. */
async function imageFiles(m: Machine): Promise<string[]> {
  return (m.config.blockdevs ?? [])
    .filter((b) => b.driver === 'file')
    .map((b) => String((b as { filename?: unknown }).filename));
}

console.log(
  `\nSnapshots per QEMU binary; accelerator ${[...accels].map(([q, a]) => `${q}: ${a}`).join(', ')}; guest RAM filled with distinct non-zero pages (testguest fillRam), guest paused for the save; store and dd target in ${tmpdir()}; 2 shared cores, other sessions running (load average above)`,
);
for (const mib of sizes) {
  const b = baselines.get(mib);
  if (!b) continue;
  console.log(
    `\n${mib} MiB — dd write conv=fdatasync ${f2(b.writeMs)} s, dd read iflag=direct ${f2(b.readMs)} s (median of 3)`,
  );
  console.log(
    `  ${'QEMU'.padEnd(5)} ${'case'.padEnd(25)} ${'format'.padEnd(22)} ${'save s'.padStart(6)} ${'×dd-w'.padStart(6)} ${'hash s'.padStart(6)} ${'call s'.padStart(6)}  cold loads (s, ×dd-r)`,
  );
  for (const r of rows.filter((x) => x.size === mib)) {
    const loads = r.loads
      .map(
        (l) =>
          `${l.label} ${f2(l.ms)} (${(b.readMs / l.ms).toFixed(2)}×${l.ok ? '' : ', NO COUNTER'}${l.resident > 0 ? `, ${(l.resident / MiB).toFixed(0)} MiB cached` : ''})`,
      )
      .join('; ');
    console.log(
      `  ${r.qemu.padEnd(5)} ${r.label.padEnd(25)} ${r.format.padEnd(22)} ${f2(r.saveMs).padStart(6)} ${(b.writeMs / r.saveMs).toFixed(2).padStart(6)} ${f2(r.checksumMs).padStart(6)} ${f2(r.totalMs).padStart(6)}  ${loads}`,
    );
  }
  const ext10 = rows.filter((r) => r.size === mib && r.label === 'ext default');
  for (const r of ext10) {
    const load = r.loads[0];
    console.log(
      `  goals (QEMU ${r.qemu}, default external): save incl. fsync ${(b.writeMs / r.saveMs).toFixed(2)}× dd write+fdatasync (goal ≥ 1.0; with the read-back SHA-256 ${(b.writeMs / (r.saveMs + r.checksumMs)).toFixed(2)}×, whole call ${(b.writeMs / r.totalMs).toFixed(2)}×); cold load ${load ? (b.readMs / load.ms).toFixed(2) : '?'}× dd O_DIRECT read (goal ≥ 0.9)`,
    );
  }
}
console.log(
  `\nload average after ${loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')}`,
);
