// What bench:snapshots and bench:sink share: the tiny guest booted with every RAM page filled
// (nothing is skipped as a zero page), a timed migration of it, the discarding reader that
// is the ceiling for any sink, and the dd helpers of the disk baseline.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import { createQcow2Guest } from '@qmpkit/testguest';
import { guestConfig } from './guest-config.js';

export const FILLED = /F=([0-9A-F]{8})\r\n/;
export const COUNTER = /C=([0-9A-F]{8})\r\n/;

/** Boots the guest with `mib` MiB of RAM, waits until it has filled RAM and counts. */
export async function bootFilled(
  dir: string,
  name: string,
  mib: number,
  accel: readonly AccelConfig[],
  /** Which QEMU (`launchQemu(binary)` of the test support); default the system's. */
  qemu?: { readonly qemu: string; readonly cacheDir: string },
): Promise<Machine> {
  const image = await createQcow2Guest(join(dir, `${name}.qcow2`), {
    fillRam: true,
    intervalMs: 20,
  });
  const config = guestConfig(image, accel, mib);

  const m = await launch(config, {
    ...qemu,
    consoles: ['ser0'],
    runDirParent: dir,
    launchTimeout: 120_000,
  });
  await m.console('ser0').expect(FILLED, { timeout: 600_000 });
  await m.console('ser0').expect(COUNTER, { timeout: 60_000 });
  return m;
}

export interface Sample {
  ms: number;
  /** CPU time of this Node process (all threads, incl. workers and libuv's pool). */
  cpuMs: number;
  /** From QEMU's `completed` to the reader's end. */
  tailMs: number;
  bytes: number;
}

/** Migrates the (paused) guest to `uri`; resolves when `finished` does, timing both ends. */
export async function migrate(
  m: Machine,
  uri: string,
  finished: () => Promise<number>,
): Promise<Sample> {
  // QEMU refuses to migrate a guest paused by a previous migration: run it for a moment.
  const status = await m.qmp.execute('query-status');
  if (status.status === 'postmigrate') {
    await m.qmp.execute('cont');
    await m.qmp.execute('stop');
  }
  const completed = m.qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
  const cpu = process.cpuUsage();
  const started = performance.now();
  await m.qmp.execute('migrate', { uri });
  await completed.wait({ timeout: 600_000 });
  const at = performance.now();
  const bytes = await finished();
  const end = performance.now();
  const used = process.cpuUsage(cpu);
  return { ms: end - started, cpuMs: (used.user + used.system) / 1000, tailMs: end - at, bytes };
}

/** Pauses the guest and lets migration run unthrottled with MIGRATION events on. */
export async function prepareMigration(m: Machine): Promise<void> {
  await m.qmp.execute('stop');
  await m.qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'events', state: true }],
  });
  await m.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
}

/** The ceiling: migration into a UNIX socket whose reader drops the bytes (and may hash them). */
export async function discard(m: Machine, dir: string, hash: boolean): Promise<Sample> {
  const socketPath = join(dir, 'discard.sock');
  const server = net.createServer();
  try {
    let received = 0;
    let digest = '';
    const drained = new Promise<void>((resolve, reject) => {
      server.on('connection', (sock) => {
        const h = hash ? createHash('sha256') : undefined;
        sock.on('data', (c: Buffer) => {
          received += c.length;
          h?.update(c);
        });
        sock.on('end', () => {
          digest = h?.digest('hex') ?? '';
          resolve();
        });
        sock.on('error', reject);
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const s = await migrate(m, `unix:${socketPath}`, async () => {
      await drained;
      return received;
    });
    if (hash && digest.length !== 64) throw new Error('no digest');
    return s;
  } finally {
    server.close();
    await rm(socketPath, { force: true });
  }
}

/** Runs a command (argument array); resolves with its wall time in ms. */
export function run(command: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(performance.now() - started)
        : reject(new Error(`${command} ${args.join(' ')}: ${err}`)),
    );
  });
}

/** A non-zero source of `mib` MiB in /dev/shm, so dd measures only the disk side. */
export async function ddSource(mib: number, tag: string): Promise<string> {
  const src = join('/dev/shm', `qmpkit-bench-${tag}-src-${process.pid}`);
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 0x9e3779b1) >>> 0 || 1, i);
  const h = await open(src, 'w');
  for (let i = 0; i < mib; i++) {
    chunk.writeUInt32LE(i + 1, 0);
    await h.write(chunk);
  }
  await h.close();
  return src;
}
