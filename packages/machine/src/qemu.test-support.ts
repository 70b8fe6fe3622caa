/**
 * Test support for the real-QEMU suites: when to skip, private temp dirs, the tiny test
 * guest as a `VmConfig`, and bookkeeping so every machine a test started is ended (by its
 * own pid only). Not part of the published package.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { writeGuestImage } from '@qmpkit/testguest';
import type { Machine } from './machine.js';
import { processAlive, waitForProcessGone } from './proc.js';
import { runDirProcesses } from './tracking.js';

const present = (command: string) => spawnSync(command, ['--version']).status === 0;
const qemuPresent = present('qemu-system-x86_64') && present('qemu-img');

/** Why the real-QEMU tests skip (only outside CI, when QEMU is missing), or undefined. */
export const qemuSkipReason: string | undefined =
  !qemuPresent && process.env.CI !== 'true'
    ? 'qemu-system-x86_64 or qemu-img not found on PATH (outside CI, real-QEMU tests are skipped)'
    : undefined;

/** A private (0700) temporary directory and its cleanup. */
export function privateDir(prefix = 'qmpkit-machine-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Machines started by a test file; `endAll` kills those still running (by their own pid). */
export class Started {
  private readonly machines: Machine[] = [];

  add<M extends Machine>(machine: M): M {
    this.machines.push(machine);
    return machine;
  }

  async endAll(): Promise<void> {
    for (const m of this.machines.splice(0)) {
      if (m.status === 'running') await m.kill().catch(() => {});
    }
  }
}

/**
 * Kills every QEMU a test started that is still running, also when the test failed or timed
 * out and also those whose manager was another process: every process whose `-pidfile` lies
 * under `dir` (each machine's run dir is inside the test's temp dir), plus `pids` a test
 * recorded itself. Only by pid, never by name. Returns the pids it had to kill.
 */
export async function killStrays(dir: string, pids: Iterable<number> = []): Promise<number[]> {
  const targets = new Set([...(await runDirProcesses(dir, { nested: true })).map((p) => p.pid)]);
  for (const pid of pids) if (processAlive(pid)) targets.add(pid);
  for (const pid of targets) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
    await waitForProcessGone(pid, 10_000);
  }
  return [...targets];
}

/**
 * The tiny test guest as a configuration: pc machine, TCG (fast here; see the package
 * README), 32 MiB, the boot disk on IDE, COM1 on chardev `ser0` (to be a console).
 */
export async function guestConfig(
  dir: string,
  options: { name?: string; intervalMs?: number } = {},
): Promise<VmConfig> {
  const image = await writeGuestImage(path.join(dir, `${options.name ?? 'guest'}.raw`), {
    intervalMs: options.intervalMs ?? 20,
  });
  return {
    machine: { type: 'pc-i440fx-7.2' },
    accel: ['tcg'],
    memory: { size: 32 * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'boot-file', filename: image },
      { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
}

/** Names of the block nodes QEMU has, sorted, with their drivers. */
export async function namedNodes(machine: Machine): Promise<string[]> {
  const nodes = await machine.qmp.execute('query-named-block-nodes', { flat: true });
  return nodes.map((n) => `${n['node-name']}:${n.drv}`).sort();
}

/** `/machine/peripheral` children as `id:type`, sorted. */
export async function peripherals(machine: Machine): Promise<string[]> {
  const list = await machine.qmp.execute('qom-list', { path: '/machine/peripheral' });
  return list
    .filter((p) => p.type.startsWith('child<'))
    .map((p) => `${p.name}:${p.type.slice(6, -1)}`)
    .sort();
}

/** qdev ids of the PCI devices, sorted. */
export async function pciIds(machine: Machine): Promise<string[]> {
  const buses = await machine.qmp.execute('query-pci');
  return buses
    .flatMap((b) => b.devices.map((d) => d.qdev_id))
    .filter((id) => id !== '')
    .sort();
}
