// Compatibility across binaries: machine-type diff, the compatibility probe, and the
// save/load torture at 128 MiB guest RAM:
//
//   pnpm bench:compat [--cycles N] [--cache-dir DIR]
//
// - `diffMachineType` 7.2 vs 10.0 for pc-i440fx-7.2 (two paused starts + QOM walks);
// - `probeCompatibility` 7.2 → 10.0 for the test guest + e1000e, uncached (dumps, two QEMUs,
//   migration) and cached (no QEMU), on a fresh cache dir;
// - `tortureVm` with the test guest at 128 MiB with every RAM page filled (so each save is
//   128 MiB of real data), N cycles 7.2 → 7.2 and 7.2 ⇄ 10.0: median cycle time (stop, save,
//   restart, load, compare, continue), the accelerator. Baseline in the same run: one plain
//   save + load of the same guest on 7.2 (no comparisons), i.e. the first torture cycle's
//   floor. Dump + diff time per binary pair is `pnpm bench:vmstate`.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { diffMachineType, probeCompatibility, resolveQemuBinary, tortureVm } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '20' },
    'cache-dir': { type: 'string', default: path.resolve(import.meta.dirname, '../../.cache') },
  },
});
const cycles = Number(values.cycles);
const cacheDir = values['cache-dir'];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-bench-compat-'));
try {
  const ten = await resolveQemuBinary('10.0', { cacheDir });
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );

  let t = Date.now();
  const md = await diffMachineType('qemu-system-x86_64', ten, 'pc-i440fx-7.2', { cacheDir });
  console.log(
    `machine diff pc-i440fx-7.2 7.2 vs 10.0: ${Date.now() - t} ms, ${md.differences.length} differences, ${md.source.objects.length} devices`,
  );

  const guest = async (name: string, ram: number, fill: boolean): Promise<VmConfig> => ({
    machine: { type: 'pc-i440fx-7.2' },
    accel: ['kvm', 'tcg'],
    memory: { size: ram },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    netdevs: [{ id: 'net0', type: 'user' }],
    blockdevs: [
      {
        driver: 'file',
        'node-name': 'boot-file',
        filename: await writeGuestImage(path.join(dir, `${name}.raw`), {
          intervalMs: 20,
          fillRam: fill,
        }),
      },
      { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
      { driver: 'e1000e', id: 'nic0', props: { netdev: 'net0' } },
    ],
  });

  const probeConfig = await guest('probe', 32 * MiB, false);
  const probeCache = path.join(dir, 'cache');
  t = Date.now();
  const p1 = await probeCompatibility({
    save: 'qemu-system-x86_64',
    load: ten,
    config: probeConfig,
    cacheDir: probeCache,
  });
  const uncached = Date.now() - t;
  t = Date.now();
  const p2 = await probeCompatibility({
    save: 'qemu-system-x86_64',
    load: ten,
    config: probeConfig,
    cacheDir: probeCache,
  });
  console.log(
    `probe 7.2 → 10.0 (32 MiB): ${p1.verdict} [${p1.flaggedSections.join(', ')}], ${uncached} ms uncached (of which migration ${p1.probe.ms} ms), ${Date.now() - t} ms cached (${p2.probe.cached ? 'no QEMU ran' : 'ran again!'})`,
  );

  const config = await guest('torture', 128 * MiB, true);
  // Baseline: a torture of 1 cycle without comparisons of the guest counter still compares
  // devices; the floor is its save + restart + load.
  t = Date.now();
  const base = await tortureVm({ config, cycles: 1, hashDisks: false });
  console.log(
    `baseline 1 cycle 7.2 → 7.2, no counter check: ${Date.now() - t} ms total (incl. boot)`,
  );
  for (const [label, restore] of [
    ['7.2 → 7.2', undefined],
    ['7.2 ⇄ 10.0', ten],
  ] as const) {
    const r = await tortureVm({
      config,
      cycles,
      counter: { chardev: 'ser0' },
      ...(restore === undefined ? {} : { restoreQemu: restore }),
    });
    const ms = r.cycles.map((c) => c.ms);
    console.log(
      `torture ${label}, 128 MiB filled, ${r.accel} (baseline run on ${base.accel}): ${r.ok ? `all ${r.cycles.length} cycles exact` : `diverged at cycle ${r.divergence?.cycle}: ${r.divergence?.message}`}; cycle median ${median(ms)} ms, min ${Math.min(...ms)}, max ${Math.max(...ms)}`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
