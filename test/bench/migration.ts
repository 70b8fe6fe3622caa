// Live migration between two local QEMUs: `migrate()` of @qmpkit/machine against a plain
// `migrate` driven by hand, in the same run, on the same guest.
//
//   pnpm bench:migration [--runs N] [--mem 256,1024] [--accel tcg] [--dirty]
//
// Guest: the boot-sector test guest with every page above 1 MiB filled (touched RAM), then
// idle (it prints a counter); with --dirty, one that rewrites all of its RAM on every
// iteration (the convergence controller has to work).
// (a) `migrate(source, {}, { transport: unix })`: target started by the library,
//     return-path + pause-before-switchover + events, max-bandwidth 16 GiB/s, convergence
//     controller (downtime-limit 100 ms first); done at the target's RESUME.
// (b) baseline by hand: a target QEMU started with `-incoming defer`, `events` on both,
//     `migrate-incoming unix:…`, the same max-bandwidth on the source, QEMU's default
//     downtime-limit (300 ms), `migrate`; done at the target's RESUME.
// Guest downtime = STOP on the source → RESUME on the target (QEMU's event timestamps, one
// host clock); QEMU's own `downtime` and last `expected-downtime` are printed beside it.
// Contenders alternate (a b, then b a) so load from other processes spreads evenly; medians.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AccelConfig, VmConfig } from '@qmpkit/devices';
import { launch, type Machine, migrate } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import { guestConfig } from './guest-config.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    mem: { type: 'string', default: '256' },
    accel: { type: 'string', default: 'tcg' },
    dirty: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const sizes = values.mem.split(',').map(Number);
const accel: AccelConfig[] = values.accel.split(',').filter((a) => a !== '');
const quiet = { warn: () => {} };
const BANDWIDTH = 16 * 1024 ** 3;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function eventMs(e: { timestamp: { seconds: number; microseconds: number } }): number {
  return e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
}

interface Sample {
  downtimeMs: number;
  qemuDowntimeMs: number;
  expectedMs: number;
  totalMs: number;
}

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-migration-'));
let n = 0;
const alive = new Set<Machine>();

async function guest(memMiB: number): Promise<{ m: Machine; config: VmConfig }> {
  n += 1;
  const image = await writeGuestImage(join(dir, `g${n}.raw`), {
    intervalMs: values.dirty ? 0 : 20,
    ...(values.dirty ? { dirtyRam: true } : { fillRam: true }),
  });
  const config = guestConfig(image, accel, memMiB);

  const m = await launch(config, {
    consoles: ['ser0'],
    runDir: join(dir, `src-${n}`),
    logger: quiet,
  });
  alive.add(m);
  // Filled (or dirtying) and counting: the RAM is touched before the migration starts.
  await m.console('ser0').expect(/F=[0-9A-F]{8}\r\n[\s\S]*C=[0-9A-F]{8}\r\n/, { timeout: 120_000 });
  return { m, config };
}

async function viaLibrary(memMiB: number): Promise<Sample & { accel: string }> {
  const { m } = await guest(memMiB);
  const started = performance.now();
  const run = migrate(
    m,
    { runDir: join(dir, `tgt-${n}`) },
    { logger: quiet, maxBandwidth: BANDWIDTH },
  );
  let expectedMs = Number.NaN;
  const watching = (async () => {
    for await (const p of run.progress) expectedMs = p.expectedDowntimeMs ?? expectedMs;
  })();
  const result = await run.result;
  await watching;
  const totalMs = performance.now() - started;
  alive.delete(m);
  alive.add(result.machine);
  const accelUsed = result.machine.accel;
  await result.machine.stop();
  alive.delete(result.machine);
  return {
    downtimeMs: result.downtimeMs ?? Number.NaN,
    qemuDowntimeMs: result.qemuDowntimeMs ?? Number.NaN,
    expectedMs,
    totalMs,
    accel: accelUsed,
  };
}

async function byHand(memMiB: number): Promise<Sample> {
  const { m, config } = await guest(memMiB);
  const started = performance.now();
  const t = await launch(config, {
    consoles: ['ser0'],
    runDir: join(dir, `tgt-${n}`),
    incoming: true,
    logger: quiet,
  });
  alive.add(t);
  const socket = join(t.runDir, 'migration.sock');
  for (const side of [m, t])
    await side.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
  await t.qmp.execute('migrate-incoming', { uri: `unix:${socket}` });
  await m.qmp.execute('migrate-set-parameters', { 'max-bandwidth': BANDWIDTH });
  const stop = m.qmp.expectEvent('STOP');
  const resume = t.qmp.expectEvent('RESUME');
  let expectedMs = Number.NaN;
  let done = false;
  const polling = (async () => {
    while (!done) {
      // A sample missed while the monitor is busy only leaves the estimate as it was.
      const info = await m.qmp.execute('query-migrate').catch(() => undefined);
      if (info?.status === 'active') expectedMs = info['expected-downtime'] ?? expectedMs;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  await m.qmp.execute('migrate', { uri: `unix:${socket}` });
  const resumed = await resume.wait({ timeout: 600_000 });
  const stopped = await stop.wait({ timeout: 1000 });
  done = true;
  await polling;
  const totalMs = performance.now() - started;
  const info = await m.qmp.execute('query-migrate');
  await m.stop();
  alive.delete(m);
  await t.stop();
  alive.delete(t);
  return {
    downtimeMs: eventMs(resumed) - eventMs(stopped),
    qemuDowntimeMs: info.downtime ?? Number.NaN,
    expectedMs,
    totalMs,
  };
}

try {
  console.log(
    `live migration, boot-sector guest (${values.dirty ? 'rewriting all its RAM without pause' : 'all RAM above 1 MiB filled, then idle'}), 7.2 → 7.2, unix socket, max-bandwidth 16 GiB/s, ${runs} runs each, medians, interleaved`,
  );
  console.log(
    `  load average before ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  for (const mem of sizes) {
    const a: Sample[] = [];
    const b: Sample[] = [];
    let accelUsed = '';
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) {
        const s = await viaLibrary(mem);
        accelUsed = s.accel;
        a.push(s);
        b.push(await byHand(mem));
      } else {
        b.push(await byHand(mem));
        const s = await viaLibrary(mem);
        accelUsed = s.accel;
        a.push(s);
      }
    }
    const row = (label: string, xs: Sample[]) =>
      `  ${label.padEnd(44)} downtime ${median(xs.map((x) => x.downtimeMs))
        .toFixed(1)
        .padStart(
          7,
        )} ms  (QEMU's ${median(xs.map((x) => x.qemuDowntimeMs)).toFixed(0)} ms, expected ${median(xs.map((x) => x.expectedMs)).toFixed(0)} ms)  total ${median(
        xs.map((x) => x.totalMs),
      )
        .toFixed(0)
        .padStart(6)} ms`;
    console.log(`${mem} MiB, accelerator ${accelUsed}:`);
    console.log(row('(a) migrate() (library)', a));
    console.log(row('(b) plain migrate by hand', b));
    const ratio = median(a.map((x) => x.downtimeMs)) / median(b.map((x) => x.downtimeMs));
    console.log(`  downtime ratio (a)/(b) = ${ratio.toFixed(2)}`);
  }
} finally {
  // Clean-up after a failed run: the run's own error is the one to see.
  for (const m of alive) await m.kill().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
