// Boot the test guest, watch its counter, poke its serial port, and read its disk record.
// Run from the repository root:
//   node --conditions=@qmpkit/source --import tsx packages/testguest/examples/boot.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCounterFromImageFile, startGuest, writeGuestImage } from '@qmpkit/testguest';

const dir = await mkdtemp(join(tmpdir(), 'testguest-example-')); // private (0700)
try {
  const image = await writeGuestImage(join(dir, 'guest.raw'), { intervalMs: 50 });
  // qemu-system-x86_64 -nodefaults -display none -machine pc -m 32 -accel kvm -accel tcg ...
  const guest = startGuest({ image });
  try {
    const counters = await guest.waitForCounters(3, { timeoutMs: 30_000 });
    const first = guest.lines.find((line) => line.parsed?.kind === 'counter');
    console.log(`counters ${counters.join(', ')}; first after ${Math.round(first?.atMs ?? 0)} ms`);

    await guest.write('x');
    const echo = await guest.waitForLine((line) => line.parsed?.kind === 'echo');
    console.log(`echoed ${JSON.stringify(echo.text)}`);
  } finally {
    await guest.stop(); // SIGTERM to this pid only
  }
  const onDisk = await readCounterFromImageFile(image);
  console.log(`last C= line ${guest.counters().at(-1)}, LBA 1 holds ${onDisk}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
