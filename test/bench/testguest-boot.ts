// Boot and RAM-fill timings of @qmpkit/testguest under TCG and KVM.
//
//   pnpm bench:testguest [--runs N] [--memory MiB] [--accel tcg,kvm]
//
// For each accelerator (one `-accel`, no fallback) it boots the guest N times without and
// with fillRam and prints medians: spawn → G= is QEMU + SeaBIOS (the baseline the guest
// cannot change), G= → first C= is the guest's own start-up, and G= → F= is the RAM fill.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type GuestProcess, startGuest, writeGuestImage } from '@qmpkit/testguest';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    memory: { type: 'string', default: '128' },
    accel: { type: 'string', default: 'tcg,kvm' },
  },
});
const runs = Number(values.runs);
const memoryMiB = Number(values.memory);
const accels = values.accel
  .split(',')
  .filter((a): a is 'tcg' | 'kvm' => a === 'tcg' || a === 'kvm');

function at(guest: GuestProcess, kind: string): number {
  const line = guest.lines.find((l) => l.parsed?.kind === kind);
  if (!line) throw new Error(`no ${kind} line`);
  return line.atMs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const ms = (x: number): string => `${Math.round(x)} ms`;

const dir = await mkdtemp(join(tmpdir(), 'testguest-bench-'));
try {
  const plain = await writeGuestImage(join(dir, 'plain.raw'));
  const filled = await writeGuestImage(join(dir, 'fill.raw'), { fillRam: true });
  console.log(
    `qemu-system-x86_64 -nodefaults -display none -machine pc -m ${memoryMiB} -accel <one> ...; ${runs} runs, medians`,
  );
  for (const accel of accels) {
    const boot: number[] = [];
    const init: number[] = [];
    const fill: number[] = [];
    let fillBytes = 0;
    try {
      for (let i = 0; i < runs; i++) {
        const g = startGuest({ image: plain, memoryMiB, accel: [accel] });
        try {
          await g.waitForCounters(1, { timeoutMs: 60_000 });
          boot.push(at(g, 'hello'));
          init.push(at(g, 'counter') - at(g, 'hello'));
        } finally {
          await g.stop();
        }
        const f = startGuest({ image: filled, memoryMiB, accel: [accel] });
        try {
          const line = await f.waitForLine((l) => l.parsed?.kind === 'filled', {
            timeoutMs: 600_000,
          });
          if (line.parsed?.kind === 'filled') fillBytes = line.parsed.bytes;
          fill.push(line.atMs - at(f, 'hello'));
        } finally {
          await f.stop();
        }
      }
    } catch (error) {
      console.log(
        `${accel}: not measured (${error instanceof Error ? error.message.split(';')[0] : String(error)})`,
      );
      continue;
    }
    const mbps = fillBytes / 2 ** 20 / (median(fill) / 1000);
    console.log(
      `${accel}: spawn→G= ${ms(median(boot))} (baseline: QEMU+SeaBIOS) | G=→first C= ${ms(median(init))} | ` +
        `fill ${(fillBytes / 2 ** 20).toFixed(1)} MiB in ${ms(median(fill))} (${mbps.toFixed(0)} MiB/s, ` +
        `${(median(fill) / median(boot)).toFixed(1)}× the boot baseline) | fill runs: ${fill.map(ms).join(', ')}`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
