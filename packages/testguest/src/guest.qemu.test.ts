/**
 * Boots the guest under a real qemu-system-x86_64. Timings are attached to each test as
 * annotations (shown by the reporter) so a run documents how fast the guest was.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { fillPatternAt, GUEST_LAYOUT } from './layout.js';
import {
  createQcow2Guest,
  escapeQemuOptionValue,
  readCounterFromImageFile,
  writeGuestImage,
} from './node.js';
import { type GuestProcess, type StartGuestOptions, startGuest } from './process.js';
import { MiniQmp } from './qemu.test-support.js';
import { qemuSuite } from './test-support/index.js';

// Skip rules (never skip with CI=true) and the private temp dir: the shared test support.
const tmp = qemuSuite({ prefix: 'qmpkit-testguest-' });

let running: { guest: GuestProcess; qmp: MiniQmp | undefined }[] = [];

afterEach(async () => {
  for (const { guest, qmp } of running) {
    qmp?.close();
    await guest.stop('SIGKILL');
  }
  running = [];
});

let seq = 0;

/** Starts the guest with a QMP socket in the private temp dir. */
async function boot(
  options: StartGuestOptions,
): Promise<{ guest: GuestProcess; qmp: MiniQmp; accel: 'kvm' | 'tcg' }> {
  const socket = join(tmp.dir, `qmp-${++seq}.sock`);
  const guest = startGuest({
    ...options,
    extraArgs: ['-qmp', `unix:${escapeQemuOptionValue(socket)},server=on,wait=off`],
  });
  const entry: { guest: GuestProcess; qmp: MiniQmp | undefined } = { guest, qmp: undefined };
  running.push(entry);
  const qmp = await new Promise<MiniQmp>((resolve, reject) => {
    let settled = false;
    MiniQmp.connect(socket).then(
      (q) => {
        settled = true;
        resolve(q);
      },
      (error: unknown) => {
        settled = true;
        reject(error);
      },
    );
    void guest.exited.then((exit) => {
      if (!settled) {
        reject(
          new Error(`QEMU exited before QMP came up (${JSON.stringify(exit)}): ${guest.stderr}`),
        );
      }
    });
  });
  entry.qmp = qmp;
  const kvm = (await qmp.execute('query-kvm')) as { enabled: boolean };
  return { guest, qmp, accel: kvm.enabled ? 'kvm' : 'tcg' };
}

function firstLineMs(guest: GuestProcess, kind: string): number {
  const line = guest.lines.find((l) => l.parsed?.kind === kind);
  if (!line) throw new Error(`no ${kind} line`);
  return Math.round(line.atMs);
}

/** Asserts the counters seen are 1, 2, 3, … without gaps. */
function expectConsecutive(counters: readonly number[]): void {
  expect(counters.length).toBeGreaterThanOrEqual(3);
  expect(counters).toEqual(counters.map((_, i) => i + 1));
}

/** After QEMU is gone: LBA 1 holds the last printed counter (or the next one, see below). */
async function expectDiskHoldsLastCounter(
  ctx: TestContext,
  guest: GuestProcess,
  image: string,
  format: 'raw' | 'qcow2',
): Promise<void> {
  const last = guest.counters().at(-1);
  const onDisk = await readCounterFromImageFile(image, { format });
  // The guest writes LBA 1 before printing C=N, so a kill can only land after the write of
  // N+1 and before its line: the disk is never behind the serial output.
  expect(onDisk === last || onDisk === (last ?? 0) + 1).toBe(true);
  await ctx.annotate(`last C= line ${last}, LBA 1 holds ${onDisk}`);
}

describe('test guest under qemu-system-x86_64', () => {
  it('boots on pc/IDE/raw with -accel kvm -accel tcg: counters, echo, LBA 1', async (ctx) => {
    const image = await writeGuestImage(join(tmp.dir, 'default.raw'));
    const { guest, accel } = await boot({ image, machine: 'pc', memoryMiB: 32 });
    const counters = await guest.waitForCounters(3, { timeoutMs: 30_000 });
    expectConsecutive(counters);
    await ctx.annotate(
      `accel=${accel}: G= after ${firstLineMs(guest, 'hello')} ms, first C= after ${firstLineMs(guest, 'counter')} ms`,
    );

    const from = guest.lines.length;
    await guest.write('hi\r');
    for (const char of ['h', 'i', '\r']) {
      await guest.waitForLine((l) => l.parsed?.kind === 'echo' && l.parsed.char === char, {
        from,
        timeoutMs: 10_000,
      });
    }
    const echoed = guest.lines
      .slice(from)
      .flatMap((l) => (l.parsed?.kind === 'echo' ? [l.parsed.char] : []));
    expect(echoed).toEqual(['h', 'i', '\r']);
    const more = guest.counters().length;
    await guest.waitForCounters(more + 2, { timeoutMs: 10_000 });
    expectConsecutive(guest.counters());

    const exit = await guest.stop();
    expect(exit.signal ?? exit.code).not.toBeNull();
    await expectDiskHoldsLastCounter(ctx, guest, image, 'raw');
  });

  it('boots under -accel tcg from a qcow2 image made by createQcow2Guest', async (ctx) => {
    const image = await createQcow2Guest(join(tmp.dir, 'tcg.qcow2'));
    const { guest, accel } = await boot({ image, format: 'qcow2', accel: ['tcg'] });
    expect(accel).toBe('tcg');
    expectConsecutive(await guest.waitForCounters(3, { timeoutMs: 20_000 }));
    const firstMs = firstLineMs(guest, 'counter');
    // Reported, not asserted: boot speed is bench:testguest's business.
    await ctx.annotate(`accel=tcg: first C= after ${firstMs} ms`);
    await guest.stop();
    await expectDiskHoldsLastCounter(ctx, guest, image, 'qcow2');
  });

  it('boots under -accel tcg on q35 with virtio-blk', async (ctx) => {
    const image = await writeGuestImage(join(tmp.dir, 'q35.raw'), { intervalMs: 10 });
    const { guest } = await boot({ image, machine: 'q35', disk: 'virtio', accel: ['tcg'] });
    expectConsecutive(await guest.waitForCounters(5, { timeoutMs: 20_000 }));
    await ctx.annotate(`q35/virtio tcg: first C= after ${firstLineMs(guest, 'counter')} ms`);
    await guest.stop();
    await expectDiskHoldsLastCounter(ctx, guest, image, 'raw');
  });

  it('acknowledges ACPI PCI eject requests on pc, so device_del of a hot-plugged device completes', async (ctx) => {
    const image = await writeGuestImage(join(tmp.dir, 'eject.raw'), { intervalMs: 10 });
    const { guest, qmp } = await boot({ image, accel: ['tcg'] });
    await guest.waitForCounters(2, { timeoutMs: 20_000 });
    const peripherals = async () =>
      ((await qmp.execute('qom-list', { path: '/machine/peripheral' })) as { name: string }[])
        .map((p) => p.name)
        .filter((name) => name !== 'type');
    await qmp.execute('device_add', { driver: 'virtio-balloon-pci', id: 'hot0' });
    expect(await peripherals()).toEqual(['hot0']);
    const started = performance.now();
    await qmp.execute('device_del', { id: 'hot0' });
    while ((await peripherals()).length > 0) {
      if (performance.now() - started > 10_000) throw new Error('device_del did not complete');
      await new Promise((r) => setTimeout(r, 20));
    }
    await ctx.annotate(`removed ${Math.round(performance.now() - started)} ms after device_del`);
    // The loop goes on counting.
    const seen = guest.counters().length;
    await guest.waitForCounters(seen + 2, { timeoutMs: 10_000 });
    expectConsecutive(guest.counters());
  });

  it('fills RAM above 1 MiB under -accel tcg (-m 128) with the per-page pattern', async (ctx) => {
    const image = await writeGuestImage(join(tmp.dir, 'fill-tcg.raw'), { fillRam: true });
    const memoryMiB = 128;
    const { guest, qmp } = await boot({ image, memoryMiB, accel: ['tcg'] });
    const filled = await guest.waitForLine((l) => l.parsed?.kind === 'filled', {
      timeoutMs: 30_000,
    });
    expectConsecutive(await guest.waitForCounters(3, { timeoutMs: 10_000 }));
    const bytes = filled.parsed?.kind === 'filled' ? filled.parsed.bytes : 0;
    // Everything from 1 MiB to the top of RAM except what SeaBIOS reserves up there.
    expect(bytes).toBeGreaterThan((memoryMiB - 2) * 2 ** 20);
    const fillMs = Math.round(filled.atMs - firstLineMs(guest, 'hello'));
    await ctx.annotate(`tcg -m ${memoryMiB}: filled ${bytes} bytes in ${fillMs} ms`);

    // Look at the RAM itself.
    await qmp.execute('stop');
    const dump = join(tmp.dir, 'ram-tcg.bin');
    await qmp.execute('pmemsave', { val: 0, size: memoryMiB * 2 ** 20, filename: dump });
    const ram = await readFile(dump);
    let zeroPages = 0;
    let patternPages = 0;
    const pages = ram.length / 4096;
    for (let p = 0; p < pages; p++) {
      const page = ram.subarray(p * 4096, (p + 1) * 4096);
      if (page.every((b) => b === 0)) zeroPages++;
      const want = fillPatternAt(p * 4096);
      let all = true;
      for (let i = 0; i < 4096 && all; i += 4) all = page.readUInt32LE(i) === want;
      if (all) patternPages++;
    }
    await ctx.annotate(
      `${pages} pages: ${patternPages} hold the fill pattern, ${zeroPages} are zero`,
    );
    expect(patternPages).toBe(bytes / 4096);
    expect(zeroPages / pages).toBeLessThan(0.02);
    // The counter lives at the documented address.
    const counter = ram.readUInt32LE(GUEST_LAYOUT.counterAddress);
    expect(counter).toBeGreaterThanOrEqual(guest.counters().at(-1) ?? 0);
  });

  it('fills RAM (-m 128) and reaches the loop with -accel kvm -accel tcg', {
    timeout: 180_000,
  }, async (ctx) => {
    const image = await writeGuestImage(join(tmp.dir, 'fill-kvm.raw'), { fillRam: true });
    const { guest, accel } = await boot({ image, memoryMiB: 128 });
    const filled = await guest.waitForLine((l) => l.parsed?.kind === 'filled', {
      timeoutMs: 150_000,
    });
    expectConsecutive(await guest.waitForCounters(3, { timeoutMs: 20_000 }));
    const fillMs = Math.round(filled.atMs - firstLineMs(guest, 'hello'));
    await ctx.annotate(
      `accel=${accel} -m 128: G= after ${firstLineMs(guest, 'hello')} ms, fill took ${fillMs} ms, first C= after ${firstLineMs(guest, 'counter')} ms`,
    );
  });
});
