/**
 * Test support for the real-QEMU suites: skip reason, a private dir, the tiny test guest on
 * a qcow2 disk as a `VmConfig`, counter helpers. Not part of the published package.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine, runDirProcesses } from '@qmpkit/machine';
import { createQcow2Guest, parseCounterLine } from '@qmpkit/testguest';
import { afterAll, afterEach, beforeEach } from 'vitest';

const present = (command: string) => spawnSync(command, ['--version']).status === 0;
const qemuPresent = present('qemu-system-x86_64') && present('qemu-img');

export const qemuSkipReason: string | undefined =
  !qemuPresent && process.env.CI !== 'true'
    ? 'qemu-system-x86_64 or qemu-img not found on PATH (outside CI, real-QEMU tests are skipped)'
    : undefined;

export function privateDir(prefix = 'qmpkit-snapshots-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const COUNTER = /C=([0-9A-F]{8})\r\n/;

/** The test guest on a qcow2 disk (node `disk0`), TCG, 16 MiB, COM1 on console `ser0`. */
export async function guestConfig(
  dir: string,
  options: { name?: string; memoryMiB?: number; rawDisk?: string; machineType?: string } = {},
): Promise<VmConfig> {
  const image = await createQcow2Guest(path.join(dir, `${options.name ?? 'guest'}.qcow2`), {
    intervalMs: 20,
  });
  const raw = options.rawDisk
    ? ([
        { driver: 'file', 'node-name': 'data-file', filename: options.rawDisk },
        { driver: 'raw', 'node-name': 'data', file: 'data-file' },
      ] as const)
    : [];
  return {
    machine: { type: options.machineType ?? 'pc-i440fx-7.2' },
    accel: ['tcg'],
    memory: { size: (options.memoryMiB ?? 16) * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: image },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
      ...raw,
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 },
      ...(options.rawDisk
        ? [{ driver: 'ide-hd' as const, id: 'data0', drive: 'data', bus: 'ide.1' }]
        : []),
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
}

export async function startGuest(dir: string, config: VmConfig): Promise<Machine> {
  const m = await launch(config, { consoles: ['ser0'], runDirParent: dir });
  await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
  return m;
}

/** The next counter line on COM1 (consumed). */
export async function nextCounter(m: Machine, timeout = 20_000): Promise<number> {
  const line = await m.console('ser0').expect(COUNTER, { timeout });
  return Number.parseInt(line.groups[0] ?? '', 16);
}

/** Consumes counter lines until one is at least `n`. */
export async function counterAtLeast(m: Machine, n: number): Promise<number> {
  for (;;) {
    const c = await nextCounter(m);
    if (c >= n) return c;
  }
}

/** The RAM counter at 0x500 (HMP `xp`). */
export async function ramCounter(m: Machine): Promise<number> {
  const out = await m.qmp.hmp('xp /1wx 0x500');
  const match = /0x([0-9a-f]+)\s*$/i.exec(out.trim());
  return Number.parseInt(match?.[1] ?? 'NaN', 16);
}

/** Pauses the guest and returns its RAM counter (after console output has arrived). */
export async function pauseAndRead(m: Machine): Promise<number> {
  await m.qmp.execute('stop');
  await new Promise((r) => setTimeout(r, 60));
  return ramCounter(m);
}

/** Parses the counter values of every `C=` line in `text`. */
export function countersIn(text: string): number[] {
  return text
    .split('\r\n')
    .map((l) => parseCounterLine(l))
    .filter((n): n is number => n !== undefined);
}

/** Machines a file started; `endAll` kills those still running (their own pid only). */
export class Started {
  private readonly machines: Machine[] = [];
  add(m: Machine): Machine {
    this.machines.push(m);
    return m;
  }
  async endAll(): Promise<void> {
    for (const m of this.machines.splice(0))
      if (m.status === 'running') await m.kill().catch(() => {});
  }
}

/** Running (not zombie) — a process that is gone or only waits to be reaped is not. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * Kills every QEMU a test started that still runs, also after a failure or timeout and also
 * those of child processes: each process whose `-pidfile` lies under `dir` (every run dir of
 * a test is inside its temp dir), plus `pids` the test recorded. By pid only, never by name.
 */
export async function killStrays(dir: string, pids: Iterable<number> = []): Promise<number[]> {
  const targets = new Set((await runDirProcesses(dir, { nested: true })).map((p) => p.pid));
  for (const pid of pids) if (running(pid)) targets.add(pid);
  for (const pid of targets) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
    for (let i = 0; i < 500 && running(pid); i++) await new Promise((r) => setTimeout(r, 20));
  }
  return [...targets];
}

/**
 * The hooks every real-QEMU file registers: a private dir removed after the file, machines
 * killed after each test (and every other QEMU under the dir, see `killStrays`), each test
 * skipped with the reason when QEMU is missing. `reported`: QEMU pids children printed.
 */
export function qemuSuite(): {
  tmp: ReturnType<typeof privateDir>;
  started: Started;
  reported: Set<number>;
} {
  const tmp = privateDir();
  const started = new Started();
  const reported = new Set<number>();
  afterEach(async () => {
    await started.endAll();
    await killStrays(tmp.dir, reported);
  });
  afterAll(async () => {
    await killStrays(tmp.dir, reported);
    tmp.remove();
  });
  beforeEach((ctx) => {
    ctx.skip(qemuSkipReason !== undefined, qemuSkipReason);
  });
  return { tmp, started, reported };
}
