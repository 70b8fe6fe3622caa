// Dump + diff time per binary pair, for each pinned machine type:
//
//   pnpm bench:vmstate [--runs N] [--cache-dir DIR]
//
// Per run and machine type: `dumpVmstate` of each binary (spawn QEMU with -dump-vmstate into
// a private temp dir, read, parse), then `diffVmstate` both ways. Baseline in the same run:
// the bare `qemu -dump-vmstate` process of the first binary (spawn to exit, no reading or
// parsing), so the
// reader's share is visible. Pairs: 7.2↔7.2, and 7.2↔10.0 when 10.0 is fetched
// (`pnpm qemu:fetch 10.0`). Medians over the runs.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  diffVmstate,
  dumpVmstate,
  isQemuBinaryError,
  type QemuBinary,
  qemuBinaryArgs,
  qemuBinaryEnv,
  resolveQemuBinary,
} from '@qmpkit/machine';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'cache-dir': { type: 'string', default: path.resolve(import.meta.dirname, '../../.cache') },
  },
});
const runs = Number(values.runs);
const cacheDir = values['cache-dir'];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function bareDump(binary: QemuBinary, machine: string): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-bench-vmstate-'));
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      binary.path,
      [
        ...qemuBinaryArgs(binary),
        '-machine',
        machine,
        '-nodefaults',
        '-display',
        'none',
        '-accel',
        'tcg',
        '-dump-vmstate',
        path.join(dir, 'd.json'),
      ],
      { env: qemuBinaryEnv(binary), stdio: 'ignore' },
    );
    child.once('error', reject);
    child.once('close', () => resolve());
  });
  const ms = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return ms;
}

const binaries: QemuBinary[] = [await resolveQemuBinary('qemu-system-x86_64')];
try {
  binaries.push(await resolveQemuBinary('10.0', { cacheDir }));
} catch (error) {
  if (!isQemuBinaryError(error)) throw error;
  console.log(`(QEMU 10.0 not available: ${error.message}; only 7.2 ↔ 7.2)`);
}
console.log(
  `runs ${runs}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);

const pairs: [QemuBinary, QemuBinary][] = [[binaries[0] as QemuBinary, binaries[0] as QemuBinary]];
if (binaries[1]) pairs.push([binaries[0] as QemuBinary, binaries[1]]);

for (const machine of ['pc-i440fx-7.2', 'pc-q35-7.2']) {
  for (const [a, b] of pairs) {
    const dump: number[] = [];
    const bare: number[] = [];
    const diff: number[] = [];
    let problems = 0;
    let sections = 0;
    for (let i = 0; i < runs; i++) {
      bare.push(await bareDump(a, machine));
      let t = performance.now();
      const da = await dumpVmstate(a, machine);
      const db = await dumpVmstate(b, machine);
      dump.push(performance.now() - t);
      t = performance.now();
      const forward = diffVmstate(da.dump, db.dump);
      const backward = diffVmstate(db.dump, da.dump);
      diff.push(performance.now() - t);
      problems = forward.problems.length + backward.problems.length;
      sections = da.dump.sections.size + db.dump.sections.size;
    }
    console.log(
      `${machine.padEnd(14)} ${a.version} ↔ ${b.version}: dump both ${median(dump).toFixed(0)} ms ` +
        `(bare ${a.version} -dump-vmstate process alone: ${median(bare).toFixed(0)} ms), ` +
        `diff both ways ${median(diff).toFixed(1)} ms over ${sections} sections, ${problems} problems`,
    );
  }
}
