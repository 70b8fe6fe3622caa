/**
 * Snapshot-specific helpers for the real-QEMU suites: the tiny test guest on a qcow2 disk as
 * a `VmConfig`, counter helpers. Binary lookup, skip rules, 0700 temp dirs and killing every
 * QEMU a test started come from `@qmpkit/testguest/test-support` (`qemuSuite()`). Not part of
 * the published package.
 */
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import { createQcow2Guest, parseCounterLine } from '@qmpkit/testguest';
import { launchQemu, TEST_ACCEL } from '@qmpkit/testguest/test-support';

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
    accel: [...TEST_ACCEL],
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
  const m = await launch(config, { ...launchQemu(), consoles: ['ser0'], runDirParent: dir });
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
