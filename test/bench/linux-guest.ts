// Boot time of the Linux test guest (packages/testguest/src/linux) under TCG, to its READY
// marker and to the first answered guest-ping, beside the 512-byte test guest's boot (spawn
// to its first counter line) on the same binary as the baseline.
//
//   pnpm bench:linuxguest [--runs 3] [--qemu 7.2,10.0] [--compression none,gzip]
//
// `7.2` is the system qemu-system-x86_64 (whatever its version), `10.0` the release in
// .cache (`pnpm qemu:fetch 10.0`); guests come from .cache (`pnpm testguest:linux`, built
// here when missing).
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type QemuBinary, resolveQemuBinary } from '@qmpkit/machine';
import {
  buildLinuxGuest,
  READY_MARKER,
  startGuest,
  startLinuxGuest,
  writeGuestImage,
} from '@qmpkit/testguest';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    qemu: { type: 'string', default: '7.2,10.0' },
    compression: { type: 'string', default: 'none,gzip' },
  },
});
const runs = Number(values.runs);
const cacheDir = path.resolve(import.meta.dirname, '../../.cache');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/**
 * CPU time (user + system, all threads) QEMU has used so far, in ms, from /proc/<pid>/stat:
 * on a busy machine wall-clock boot times mostly measure the queue for a core, this does not.
 */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is the state (field 3); utime and stime are fields 14 and 15, in clock ticks (100/s)
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function binaryFor(spec: string): Promise<QemuBinary | undefined> {
  try {
    return spec === '7.2'
      ? await resolveQemuBinary('qemu-system-x86_64')
      : await resolveQemuBinary(spec, { cacheDir });
  } catch (error) {
    console.log(`${spec}: skipped (${error instanceof Error ? error.message : String(error)})`);
    return undefined;
  }
}

/** The tiny guest's spawn → first counter line; QEMU_MODULE_DIR set for an unpacked binary. */
async function tinyBoot(binary: QemuBinary, image: string): Promise<number> {
  const saved = process.env.QEMU_MODULE_DIR;
  if (binary.moduleDir) process.env.QEMU_MODULE_DIR = binary.moduleDir;
  else delete process.env.QEMU_MODULE_DIR;
  const g = startGuest({
    image,
    memoryMiB: 128,
    accel: ['tcg'],
    qemu: binary.path,
    extraArgs: binary.dataDir ? ['-L', binary.dataDir] : [],
  });
  if (saved === undefined) delete process.env.QEMU_MODULE_DIR;
  else process.env.QEMU_MODULE_DIR = saved;
  try {
    await g.waitForCounters(1, { timeoutMs: 120_000 });
    const line = g.lines.find((l) => l.parsed?.kind === 'counter');
    return line?.atMs ?? Number.NaN;
  } finally {
    await g.stop();
  }
}

const dir = await mkdtemp(path.join(tmpdir(), 'linux-guest-bench-'));
try {
  const tinyImage = await writeGuestImage(path.join(dir, 'tiny.raw'));
  const compressions = values.compression
    .split(',')
    .filter((c): c is 'none' | 'gzip' => c === 'none' || c === 'gzip');
  const guests = [];
  for (const compression of compressions) {
    const guest = await buildLinuxGuest({ cacheDir, compression });
    guests.push(guest);
    console.log(
      `guest (${compression}): kernel ${guest.manifest.kernelRelease} vmlinux ${(guest.manifest.kernelBytes / 1e6).toFixed(1)} MB, initrd ${(guest.manifest.initrdBytes / 1e6).toFixed(1)} MB`,
    );
  }
  console.log(`TCG, -m 256, 1 vCPU, ${runs} runs, medians (all runs in brackets)`);
  for (const spec of values.qemu.split(',')) {
    const binary = await binaryFor(spec);
    if (!binary) continue;
    const tiny: number[] = [];
    for (let i = 0; i < runs; i++) tiny.push(await tinyBoot(binary, tinyImage));
    console.log(
      `QEMU ${binary.version}: baseline 512-byte guest spawn→first counter ${sec(median(tiny))} [${tiny.map(sec).join(', ')}]`,
    );
    for (const guest of guests) {
      const ready: number[] = [];
      const agent: number[] = [];
      const readyCpu: number[] = [];
      for (let i = 0; i < runs; i++) {
        const runDir = await mkdtemp(path.join(dir, 'run-'));
        const vm = startLinuxGuest({ guest, dir: runDir, qemu: binary });
        try {
          ready.push((await vm.waitForLine(new RegExp(`^${READY_MARKER}$`))).atMs);
          readyCpu.push(cpuMs(vm.pid));
          agent.push(await vm.pingAgent());
        } finally {
          await vm.kill();
        }
      }
      console.log(
        `QEMU ${binary.version}: linux guest (${guest.manifest.compression}) spawn→READY ${sec(median(ready))} [${ready.map(sec).join(', ')}], spawn→guest-ping ${sec(median(agent))} [${agent.map(sec).join(', ')}]; READY = ${(median(ready) / median(tiny)).toFixed(1)}× the baseline; QEMU CPU time to READY ${sec(median(readyCpu))}`,
      );
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
