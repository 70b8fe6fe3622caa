import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isGuestOptionsError, isQemuImgError } from './errors.js';
import { buildDiskImage } from './image.js';
import {
  escapeQemuOptionValue,
  guestQemuArgs,
  readCounterFromImageFile,
  runQemuImg,
  writeGuestImage,
} from './node.js';
import { privateTempDir } from './test-support/index.js';

const tmp = privateTempDir();
afterAll(() => tmp.remove());

describe('guestQemuArgs', () => {
  it('builds the default command line (pc, 32 MiB, KVM then TCG, IDE, serial on stdio)', () => {
    expect(guestQemuArgs({ image: '/images/guest.raw' })).toEqual([
      '-nodefaults',
      '-display',
      'none',
      '-machine',
      'pc',
      '-m',
      '32',
      '-accel',
      'kvm',
      '-accel',
      'tcg',
      '-chardev',
      'stdio,id=serial0,signal=off',
      '-serial',
      'chardev:serial0',
      '-blockdev',
      '{"driver":"file","filename":"/images/guest.raw","node-name":"disk0-file"}',
      '-blockdev',
      '{"driver":"raw","file":"disk0-file","node-name":"disk0"}',
      '-device',
      'ide-hd,drive=disk0,bootindex=1',
    ]);
  });

  it('supports qcow2, q35, virtio, TCG only, and a serial file or socket', () => {
    const args = guestQemuArgs({
      image: '/i/g.qcow2',
      format: 'qcow2',
      machine: 'q35',
      memoryMiB: 128,
      accel: ['tcg'],
      disk: 'virtio',
      nodeName: 'root',
      serial: { socket: '/run/x,y/serial.sock', wait: true },
    });
    expect(args).toContain('q35');
    expect(args.filter((a) => a === '-accel')).toHaveLength(1);
    expect(args).toContain('socket,id=serial0,path=/run/x,,y/serial.sock,server=on,wait=on');
    expect(args).toContain('{"driver":"qcow2","file":"root-file","node-name":"root"}');
    expect(args).toContain('virtio-blk-pci,drive=root,bootindex=1');
    expect(guestQemuArgs({ image: '/i', serial: { file: '/tmp/s.log' } })).toContain(
      'file,id=serial0,path=/tmp/s.log',
    );
  });

  it('puts odd file names in JSON, where they need no escaping', () => {
    const args = guestQemuArgs({ image: '/tmp/a,b "c":d.raw' });
    const file = JSON.parse(args[args.indexOf('-blockdev') + 1] ?? '') as { filename: string };
    expect(file.filename).toBe('/tmp/a,b "c":d.raw');
  });

  it('rejects nonsense', () => {
    expect(() => guestQemuArgs({ image: '/i', memoryMiB: 1.5 })).toThrowError(/memoryMiB/);
    try {
      guestQemuArgs({ image: '/i', accel: [] });
      expect.unreachable();
    } catch (error) {
      expect(isGuestOptionsError(error)).toBe(true);
    }
  });

  it('escapes commas for QEMU option values', () => {
    expect(escapeQemuOptionValue('a,b,,c')).toBe('a,,b,,,,c');
  });
});

describe('image files', () => {
  it('writes the raw image and reads its counter back', async () => {
    const path = await writeGuestImage(join(tmp.dir, 'guest.raw'), { fillRam: true });
    expect((await stat(path)).size).toBe(1024 * 1024);
    expect((await readFile(path)).equals(buildDiskImage({ fillRam: true }))).toBe(true);
    expect(await readCounterFromImageFile(path)).toBeUndefined();

    const image = buildDiskImage({ sizeBytes: 2048 });
    image.set([0x53, 0x4e, 0x41, 0x50, 9, 0, 0, 0], 512);
    await writeFile(path, image);
    expect(await readCounterFromImageFile(path, { format: 'raw' })).toBe(9);
  });

  it('reports a missing qemu-img as QemuImgError without an exit code', async () => {
    const error: unknown = await runQemuImg(['--version'], {
      qemuImg: join(tmp.dir, 'no-such-qemu-img'),
    }).catch((e: unknown) => e);
    expect(isQemuImgError(error)).toBe(true);
    expect(error).toMatchObject({ exitCode: null, args: ['--version'] });
  });

  it('rejects an unknown format', async () => {
    const path = await writeGuestImage(join(tmp.dir, 'g2.raw'));
    // @ts-expect-error -- testing the run-time check
    await expect(readCounterFromImageFile(path, { format: 'vmdk' })).rejects.toThrowError(/format/);
  });
});
