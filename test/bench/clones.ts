// Time until N clones of one snapshot run, three ways in the same run, per QEMU binary:
//   cow    a `sharedRam` template: each clone maps the template's RAM file MAP_PRIVATE;
//   copy   the same template, each clone first gets its own copy of the RAM file (`ram: copy`);
//   stream a plain snapshot: each clone loads all RAM from the state stream;
//   cold   N cold boots of the same configuration (boot + RAM fill), the baseline.
// and what they cost: bytes on disk under the clone directories (allocated, `du`-like) and
// memory (sum of the QEMUs' PSS from /proc/PID/smaps_rollup, split into anonymous and file
// pages) once all run.
//
//   pnpm bench:clones [--qemu 7.2,10.0] [--small 32] [--large 256] [--counts 1,5,10] [--large-counts 1,5]
//
// The guest is @qmpkit/testguest with `fillRam`: every page above 1 MiB is non-zero, so RAM
// is really in the state and the files. "Running" = the clone's QEMU reports `running`
// after `cont` (clones) or the guest printed its first counter line (cold boots: boot and
// fill included, since that is what a clone skips). Clones start 4 at a time, as do the
// cold boots. The state and RAM files are checked by size only (`verify: 'size'`).
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine, runQemuImg } from '@qmpkit/machine';
import { type CloneSet, cloneSnapshot, openSnapshots } from '@qmpkit/snapshots';
import { createQcow2Guest } from '@qmpkit/testguest';
import {
  launchQemu,
  privateTempDir,
  QEMU_10,
  QEMU_SYSTEM,
  type QemuBinary,
} from '@qmpkit/testguest/test-support';
import { COUNTER, FILLED } from './filled-guest.js';
import { guestConfig } from './guest-config.js';

const { values } = parseArgs({
  options: {
    qemu: { type: 'string', default: '7.2,10.0' },
    small: { type: 'string', default: '32' },
    large: { type: 'string', default: '256' },
    counts: { type: 'string', default: '1,5,10' },
    'large-counts': { type: 'string', default: '1,5' },
  },
});
const label = (b: QemuBinary) => `${b.version?.major}.${b.version?.minor}`;
const binaries = values.qemu.split(',').map((want) => {
  const found = [QEMU_SYSTEM, QEMU_10].find((b) => label(b) === want || b.id === want);
  if (found === undefined)
    throw new Error(`--qemu ${want}: known here are ${label(QEMU_SYSTEM)} and ${label(QEMU_10)}`);
  return found;
});
const cases: { mib: number; counts: number[] }[] = [
  { mib: Number(values.small), counts: values.counts.split(',').map(Number) },
  { mib: Number(values.large), counts: values['large-counts'].split(',').map(Number) },
];
const exec = promisify(execFile);
const CONCURRENCY = 4;

/** Allocated bytes under `dir` (du -sB1). */
async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await exec('du', ['-sB1', dir]);
  return Number(stdout.split('\t')[0]);
}

/** PSS of a process, anonymous and file-backed parts (kB → bytes). */
async function pss(pid: number): Promise<{ anon: number; file: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { anon: field('Pss_Anon'), file: field('Pss_File') + field('Pss_Shmem') };
}

async function memory(machines: readonly Machine[]): Promise<{ anon: number; file: number }> {
  const all = await Promise.all(machines.map((m) => pss(m.pid)));
  return all.reduce((a, b) => ({ anon: a.anon + b.anon, file: a.file + b.file }), {
    anon: 0,
    file: 0,
  });
}

const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

interface Row {
  mode: string;
  n: number;
  ms: number;
  disk: number;
  anon: number;
  file: number;
}

async function sharedRamGuest(dir: string, name: string, mib: number): Promise<VmConfig> {
  const image = await createQcow2Guest(join(dir, `${name}.qcow2`), {
    fillRam: true,
    intervalMs: 20,
  });
  return guestConfig(image, ['tcg'], mib, {
    machine: { type: 'pc-i440fx-7.2', 'memory-backend': 'ram0' },
    objects: [
      {
        'qom-type': 'memory-backend-file',
        id: 'ram0',
        size: mib * MiB,
        'mem-path': join(dir, `${name}.ram`),
        share: true,
      },
    ],
  });
}

/** N cold boots of `config`, each on its own overlay and RAM file; ms until all count. */
async function coldBoots(
  binary: QemuBinary,
  config: VmConfig,
  dir: string,
  n: number,
): Promise<Row> {
  const first = config.blockdevs?.[0];
  const base = first !== undefined && 'filename' in first ? String(first.filename) : '';
  const started = performance.now();
  const machines: Machine[] = [];
  const queue = Array.from({ length: n }, (_, i) => i);
  const worker = async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const overlay = join(dir, `cold-${i}.qcow2`);
      await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, overlay], {
        qemuImg: binary.img,
      });
      const own: VmConfig = {
        ...config,
        objects: (config.objects ?? []).map((o) =>
          o['qom-type'] === 'memory-backend-file'
            ? { ...o, 'mem-path': join(dir, `cold-${i}.ram`) }
            : o,
        ),
        blockdevs: [
          { driver: 'file', 'node-name': 'disk0-file', filename: overlay },
          { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
        ],
      };
      const m = await launch(own, { ...launchQemu(binary), consoles: ['ser0'], runDirParent: dir });
      machines.push(m);
      await m.console('ser0').expect(FILLED, { timeout: 300_000 });
      await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  const ms = performance.now() - started;
  const mem = await memory(machines);
  await Promise.all(machines.map((m) => m.stop()));
  let disk = 0;
  for (let i = 0; i < n; i++)
    disk +=
      (await diskBytes(join(dir, `cold-${i}.qcow2`))) +
      (await diskBytes(join(dir, `cold-${i}.ram`)));
  for (let i = 0; i < n; i++) {
    await rm(join(dir, `cold-${i}.qcow2`), { force: true });
    await rm(join(dir, `cold-${i}.ram`), { force: true });
  }
  return { mode: 'cold', n, ms, disk, ...mem };
}

async function clones(
  binary: QemuBinary,
  store: string,
  dir: string,
  mode: 'cow' | 'copy' | 'stream',
  n: number,
): Promise<Row> {
  const into = join(dir, `${mode}-${n}`);
  const set: CloneSet = await cloneSnapshot(store, mode === 'stream' ? 'plain' : 'tpl', {
    count: n,
    into,
    ...launchQemu(binary),
    ...(mode === 'copy' ? { ram: 'copy' as const } : {}),
    concurrency: CONCURRENCY,
    verify: 'size',
  });
  try {
    const machines = set.clones.map((c) => c.machine);
    // Every clone really runs (the guest writes RAM and disk from here on).
    for (const m of machines) {
      const status = await m.qmp.execute('query-status');
      if (status.status !== 'running') throw new Error(`clone ${m.pid} is ${status.status}`);
    }
    const mem = await memory(machines);
    return { mode, n, ms: set.totalMs, disk: await diskBytes(into), ...mem };
  } finally {
    await Promise.all(set.clones.map((c) => c.machine.stop()));
    await rm(into, { recursive: true, force: true });
  }
}

console.log(`bench:clones — accelerator tcg, load ${loadavg()[0]?.toFixed(1)} at start`);
for (const binary of binaries) {
  for (const { mib, counts } of cases) {
    const tmp = privateTempDir('qmpkit-bench-clones-');
    try {
      const config = await sharedRamGuest(tmp.dir, 'tpl', mib);
      const template = await launch(config, {
        ...launchQemu(binary),
        consoles: ['ser0'],
        runDirParent: tmp.dir,
      });
      await template.console('ser0').expect(FILLED, { timeout: 300_000 });
      await template.console('ser0').expect(COUNTER, { timeout: 60_000 });
      const store = join(tmp.dir, 'store');
      const snaps = await openSnapshots(template, { dir: store, strategy: 'external' });
      const tpl = await snaps.save('tpl', { sharedRam: true });
      const plain = await snaps.save('plain', { portable: true });
      await template.stop();
      console.log(
        `\nQEMU ${binary.version?.major}.${binary.version?.minor}.${binary.version?.micro}, ${mib} MiB guest RAM (filled): template stream ${mb(tpl.bytesWritten)} + RAM file ${mb(tpl.sharedRam?.used ? tpl.sharedRam.ramFile.bytes : 0)}; plain stream ${mb(plain.bytesWritten)}`,
      );
      console.log(
        'mode    N  time to all running  per clone   disk (clone dirs)  PSS anon    PSS file',
      );
      for (const n of counts) {
        const rows: Row[] = [];
        for (const mode of ['cow', 'copy', 'stream'] as const)
          rows.push(await clones(binary, store, tmp.dir, mode, n));
        rows.push(await coldBoots(binary, config, tmp.dir, n));
        for (const r of rows)
          console.log(
            `${r.mode.padEnd(6)} ${String(r.n).padStart(2)}  ${s(r.ms).padStart(19)}  ${s(r.ms / r.n).padStart(9)}  ${mb(r.disk).padStart(17)}  ${mb(r.anon).padStart(10)}  ${mb(r.file).padStart(10)}`,
          );
        const cow = rows[0]?.ms ?? Number.NaN;
        const ratio = (mode: string) =>
          ((rows.find((r) => r.mode === mode)?.ms ?? Number.NaN) / cow).toFixed(2);
        console.log(
          `  N=${n}: copy/cow ${ratio('copy')}×, stream/cow ${ratio('stream')}×, cold/cow ${ratio('cold')}×`,
        );
      }
    } finally {
      tmp.remove();
    }
  }
}
