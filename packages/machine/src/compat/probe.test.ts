import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import { afterAll, describe, expect, it } from 'vitest';
import { condenseReason, deviceSet, scratchConfig } from './probe.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-probe-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (image: string): VmConfig => ({
  machine: { type: 'pc-i440fx-7.2' },
  memory: { size: 32 * 1024 * 1024 },
  chardevs: [{ id: 'ser0', backend: { type: 'file', data: { out: '/somewhere/log' } } }],
  netdevs: [{ id: 'n0', type: 'user', hostfwd: [{ str: 'tcp::2222-:22' }] }],
  blockdevs: [
    { driver: 'file', 'node-name': 'f', filename: image },
    { driver: 'raw', 'node-name': 'd', file: 'f' },
  ],
  devices: [{ driver: 'ide-hd', id: 'disk', drive: 'd', bus: 'ide.0' }],
});

describe('scratchConfig', () => {
  it('a sparse image of the same size, null chardevs, plain user netdevs; the original untouched', async () => {
    const image = path.join(dir, 'user.raw');
    writeFileSync(image, Buffer.alloc(64 * 1024, 7));
    const before = statSync(image).mtimeMs;
    const scratch = await scratchConfig(config(image), dir, 'save');
    const file = scratch.blockdevs?.[0] as { filename: string };
    expect(file.filename).not.toBe(image);
    expect(statSync(file.filename).size).toBe(64 * 1024);
    expect(readFileSync(file.filename).every((b) => b === 0)).toBe(true);
    expect(scratch.chardevs).toEqual([{ id: 'ser0', backend: { type: 'null', data: {} } }]);
    expect(scratch.netdevs).toEqual([{ id: 'n0', type: 'user' }]);
    expect(scratch.paused).toBe(true);
    expect(statSync(image).mtimeMs).toBe(before);
  });
});

describe('deviceSet', () => {
  it('ignores backends and paths, sees devices and RAM', () => {
    const a = deviceSet(config('/a.raw'));
    expect(deviceSet(config('/elsewhere/b.raw'))).toEqual(a);
    expect(deviceSet({ ...config('/a.raw'), memory: { size: 64 * 1024 * 1024 } })).not.toEqual(a);
  });
});

describe('condenseReason', () => {
  it("QEMU's messages without the program prefix and module noise", () => {
    const stderr = [
      'qemu-system-x86_64: failed to open module: libvirglrenderer.so.1: cannot open',
      'qemu-system-x86_64: Size mismatch: 0000:00:03.0/e1000e.rom: 0x40000 != 0x80000: Invalid argument',
      "qemu-system-x86_64: error while loading state for instance 0x0 of device 'ram'",
      'qemu-system-x86_64: load of migration failed: Invalid argument',
      '',
    ].join('\n');
    expect(condenseReason(stderr)).toBe(
      "Size mismatch: 0000:00:03.0/e1000e.rom: 0x40000 != 0x80000: Invalid argument; error while loading state for instance 0x0 of device 'ram'; load of migration failed: Invalid argument",
    );
  });
});
