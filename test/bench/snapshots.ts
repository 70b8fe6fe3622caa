// Save and load times, guest downtime and state size of the three snapshot strategies, next
// to `dd` sequential write and read of the same size on the same disk, in the same run.
//
//   pnpm bench:snapshots [--quick] [--sizes 128,1024] [--accel tcg]
//
// The guest is @qmpkit/testguest with `fillRam`: every RAM page above 1 MiB holds a
// different non-zero value, so nothing is skipped as a zero page. Each strategy gets a fresh
// VM: boot, fill, save while running, let it run, load. External also runs in live mode
// (background-snapshot), whose restored state is checked against the pause point.
// Baselines: `dd` (argument array) from a non-zero source in /dev/shm to a file beside the
// store with `conv=fdatasync` (write) and back with `iflag=direct` (read). The page cache is
// not dropped (that needs root): loads may read from it, which the dd read does not.
// Downtime is QEMU's STOP → RESUME event timestamps (external load: old QEMU told to quit →
// new QEMU's RESUME).
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import { openSnapshots, type StrategyKind } from '@qmpkit/snapshots';
import { parseCounterLine, readCounterFromImageFile } from '@qmpkit/testguest';
import { bootFilled, COUNTER, ddSource, discard, prepareMigration, run } from './filled-guest.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    accel: { type: 'string', default: 'tcg' },
  },
});
const sizes = (values.sizes ?? (values.quick ? '128' : '128,1024')).split(',').map(Number);
const accel: AccelConfig[] = values.accel.split(',').filter((a) => a !== '');

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

/**
 * The ceiling any sink can reach: the same paused, filled guest migrated into a UNIX socket
 * whose reader discards the bytes (no hashing, no file), and Node's SHA-256 over the same
 * number of bytes on one thread. External save time cannot go below the first; the
 * checksum the store keeps costs the second on a core QEMU's migration thread competes for.
 */
async function ceiling(dir: string, mib: number): Promise<{ discardMs: number; sha256Ms: number }> {
  const m = await bootFilled(dir, `ceiling-${mib}`, mib, accel);
  try {
    await prepareMigration(m);
    const { ms: discardMs, bytes } = await discard(m, dir, false);
    // The stream is about RAM's size: zero pages (the guest's first MiB) go as a few bytes.
    if (bytes < 0.9 * mib * MiB) throw new Error(`discarding socket got only ${bytes} bytes`);
    const chunk = Buffer.alloc(MiB, 0x5a);
    const hash = createHash('sha256');
    const t = performance.now();
    for (let i = 0; i < bytes; i += MiB) hash.update(chunk);
    hash.digest();
    return { discardMs, sha256Ms: performance.now() - t };
  } finally {
    await m.stop().catch(() => m.kill());
  }
}

interface Row {
  size: number;
  label: string;
  saveMs: number;
  saveDown: number | undefined;
  loadMs: number;
  loadDown: number | undefined;
  bytes: number;
  note: string;
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-snapshots-'));
const rows: Row[] = [];
const baselines = new Map<number, { writeMs: number; readMs: number }>();
const ceilings = new Map<number, { discardMs: number; sha256Ms: number }>();
let accelUsed = '';
try {
  console.log(`load average before ${loadavg().map(f2).join(' ')}`);
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
    ceilings.set(mib, await ceiling(dir, mib));
    const cases: { kind: StrategyKind; live: boolean }[] = [
      { kind: 'external', live: false },
      { kind: 'external', live: true },
      { kind: 'internal-jobs', live: false },
      { kind: 'internal-hmp', live: false },
    ];
    for (const c of cases) {
      const label = `${c.kind}${c.live ? ' live' : ''}`;
      const name = `${c.kind}-${c.live ? 'live-' : ''}${mib}`;
      const m = await bootFilled(dir, name, mib, accel);
      accelUsed = m.accel;
      try {
        const snaps = await openSnapshots(m, { dir: join(dir, `${name}-store`), strategy: c.kind });
        const saved = await snaps.save('s', { live: c.live });
        await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
        let note = '';
        let loaded: Awaited<ReturnType<typeof snaps.load>>;
        if (c.live) {
          // The restored state must be the pause point: the last line printed before it (in
          // the saved console text) is L; RAM is L or L+1, disk RAM or RAM-1, next line L+1.
          const record = snaps.store.find('s');
          const text = record?.consoles[0]?.unread ?? '';
          const lines = text
            .split('\r\n')
            .map((l) => parseCounterLine(l))
            .filter((n) => n !== undefined);
          const last = lines.at(-1) ?? Number.NaN;
          loaded = await snaps.load('s', { resume: false });
          const ram = Number.parseInt(
            /0x([0-9a-f]+)\s*$/i.exec((await m.qmp.hmp('xp /1wx 0x500')).trim())?.[1] ?? '',
            16,
          );
          const top = (m.config.blockdevs ?? []).find((b) => b['node-name'].endsWith('-0f')) as
            | { filename?: string }
            | undefined;
          const disk = await readCounterFromImageFile(top?.filename ?? '', {
            format: 'qcow2',
            forceShare: true,
          });
          m.console('ser0').read();
          await m.qmp.execute('cont');
          const next = parseCounterLine(
            `C=${(await m.console('ser0').expect(COUNTER, { timeout: 60_000 })).groups[0]}`,
          );
          const restoredLines = countersIn(record?.consoles[0]?.unread ?? '');
          const ok =
            (ram === last || ram === last + 1) &&
            (disk === ram || disk === ram - 1) &&
            next !== undefined &&
            next >= ram &&
            next <= ram + 1;
          note = `pause point L=${last}: RAM ${ram}, disk ${disk}, next line ${next} → ${ok ? 'exact' : 'MISMATCH'} (${restoredLines.length} unread lines restored)`;
        } else {
          loaded = await snaps.load('s', { verify: 'full' });
          await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
          if (c.kind === 'external') {
            const p = loaded.timings.phases;
            const quick = await snaps.load('s', { verify: 'auto' });
            await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
            note = `load phases (verify: 'full'): verify (SHA-256) ${f2((p.verify ?? 0) / 1000)} s, restart ${f2((p.restart ?? 0) / 1000)} s, incoming ${f2((p.load ?? 0) / 1000)} s; with verify: 'auto' (file unchanged since the save → no re-hash) the load took ${f2(quick.timings.totalMs / 1000)} s (${f2(mibps(saved.bytesWritten, quick.timings.totalMs) / mibps(mib * MiB, baselines.get(mib)?.readMs ?? 1))}× dd-r)`;
            const sp = saved.timings.phases;
            note += `\n    save phases: overlay ${f2((sp.overlay ?? 0) / 1000)} s, pause+switch ${f2(((sp.pause ?? 0) + (sp.switch ?? 0)) / 1000)} s, migrate ${f2((sp.save ?? 0) / 1000)} s, resume ${f2((sp.resume ?? 0) / 1000)} s, commit ${f2((sp.commit ?? 0) / 1000)} s`;
          }
        }
        const size = saved.snapshot.stateFile
          ? (await stat(saved.snapshot.stateFile.path)).size
          : saved.bytesWritten;
        rows.push({
          size: mib,
          label,
          saveMs: saved.timings.totalMs,
          saveDown: saved.timings.downtimeMs,
          loadMs: loaded.timings.totalMs,
          loadDown: loaded.timings.downtimeMs,
          bytes: size,
          note,
        });
      } finally {
        await m.stop().catch(() => m.kill());
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

function countersIn(text: string): number[] {
  return text
    .split('\r\n')
    .map((l) => parseCounterLine(l))
    .filter((n): n is number => n !== undefined);
}

console.log(
  `Snapshots, QEMU 7.2, accelerator ${accelUsed}, guest RAM filled with non-zero pages (testguest fillRam), store and dd target in ${tmpdir()}`,
);
for (const mib of sizes) {
  const b = baselines.get(mib);
  if (!b) continue;
  const w = mibps(mib * MiB, b.writeMs);
  const r = mibps(mib * MiB, b.readMs);
  console.log(
    `\n${mib} MiB guest — dd (median of 3) write conv=fdatasync ${f2(b.writeMs / 1000)} s (${w.toFixed(0)} MiB/s), dd read iflag=direct ${f2(b.readMs / 1000)} s (${r.toFixed(0)} MiB/s)`,
  );
  const c = ceilings.get(mib);
  if (c)
    console.log(
      `  ceiling: QEMU migration of the paused guest into a discarding socket ${f2(c.discardMs / 1000)} s (${mibps(mib * MiB, c.discardMs).toFixed(0)} MiB/s, ${f2(mibps(mib * MiB, c.discardMs) / w)}× dd-w); SHA-256 of as many bytes in Node ${f2(c.sha256Ms / 1000)} s`,
    );
  console.log(
    `  ${'strategy'.padEnd(15)} ${'save s'.padStart(7)} ${'MiB/s'.padStart(6)} ${'×dd-w'.padStart(6)} ${'downtime ms'.padStart(11)} ${'load s'.padStart(7)} ${'MiB/s'.padStart(6)} ${'×dd-r'.padStart(6)} ${'load down ms'.padStart(12)} ${'state MiB'.padStart(9)}`,
  );
  for (const row of rows.filter((x) => x.size === mib)) {
    const sv = mibps(row.bytes, row.saveMs);
    const ld = mibps(row.bytes, row.loadMs);
    console.log(
      `  ${row.label.padEnd(15)} ${f2(row.saveMs / 1000).padStart(7)} ${sv.toFixed(0).padStart(6)} ${f2(sv / w).padStart(6)} ${(row.saveDown === undefined ? '–' : row.saveDown.toFixed(1)).padStart(11)} ${f2(row.loadMs / 1000).padStart(7)} ${ld.toFixed(0).padStart(6)} ${f2(ld / r).padStart(6)} ${(row.loadDown === undefined ? '–' : row.loadDown.toFixed(0)).padStart(12)} ${f1(row.bytes / MiB).padStart(9)}`,
    );
    if (row.note) console.log(`    ${row.note}`);
  }
}
console.log(`\nload average after ${loadavg().map(f2).join(' ')}`);
