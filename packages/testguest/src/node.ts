/**
 * Host-side helpers that touch the file system or run QEMU tools. Every child process is
 * spawned with an argument array (never through a shell), and temporary files live in a
 * private (0700) directory that is removed afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GuestOptionsError, QemuImgError } from './errors.js';
import { buildDiskImage, type DiskImageOptions, readCounterFromDisk } from './image.js';
import { RECORD_LBA, SECTOR_SIZE } from './layout.js';

/** Disk image formats the helpers understand. */
export type GuestImageFormat = 'raw' | 'qcow2';

/** Options for helpers that run `qemu-img`. */
export interface QemuImgOptions {
  /** The `qemu-img` executable. Default `'qemu-img'` (looked up on PATH). */
  readonly qemuImg?: string;
}

/**
 * Writes the raw disk image (see `buildDiskImage`) to `path`, replacing any file there.
 * Returns the absolute path.
 */
export async function writeGuestImage(
  path: string,
  options: DiskImageOptions = {},
): Promise<string> {
  const target = resolve(path);
  await writeFile(target, buildDiskImage(options));
  return target;
}

/** Runs `qemu-img` with an argument array; rejects with `QemuImgError` on failure. */
export function runQemuImg(args: readonly string[], options: QemuImgOptions = {}): Promise<string> {
  const command = options.qemuImg ?? 'qemu-img';
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (cause) => {
      reject(
        new QemuImgError({ command, args, exitCode: null, signal: null, stderr: '' }, { cause }),
      );
    });
    child.on('close', (exitCode, signal) => {
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (exitCode === 0) resolvePromise(Buffer.concat(out).toString('utf8'));
      else reject(new QemuImgError({ command, args, exitCode, signal, stderr }));
    });
  });
}

async function withPrivateDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  // mkdtemp creates the directory with mode 0700.
  const dir = await mkdtemp(join(tmpdir(), 'qmpkit-testguest-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Writes the guest as a qcow2 image at `path` (through `qemu-img convert` from a raw image
 * in a private temporary directory). Returns the absolute path.
 */
export async function createQcow2Guest(
  path: string,
  options: DiskImageOptions & QemuImgOptions = {},
): Promise<string> {
  const target = resolve(path);
  await withPrivateDir(async (dir) => {
    const raw = await writeGuestImage(join(dir, 'guest.raw'), options);
    await runQemuImg(['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, target], options);
  });
  return target;
}

/** Options for `readCounterFromImageFile`. */
export interface ReadImageOptions extends QemuImgOptions {
  /** Image format. Default `'raw'`. */
  readonly format?: GuestImageFormat;
  /**
   * qcow2 only: pass `-U` so the image can be read while a QEMU process holds its lock.
   * The result is then only as consistent as the image was at that moment. Default false.
   */
  readonly forceShare?: boolean;
}

/**
 * Reads the counter the guest last wrote to LBA 1 of an image file: raw files are read
 * directly, qcow2 through `qemu-img dd` (so backing chains are followed). `undefined` if the
 * guest has not written a record yet.
 */
export async function readCounterFromImageFile(
  path: string,
  options: ReadImageOptions = {},
): Promise<number | undefined> {
  const format = options.format ?? 'raw';
  const bytesNeeded = (RECORD_LBA + 1) * SECTOR_SIZE;
  const file = resolve(path);
  if (format === 'raw') {
    const handle = await open(file, 'r');
    try {
      const buffer = new Uint8Array(bytesNeeded);
      const { bytesRead } = await handle.read(buffer, 0, bytesNeeded, 0);
      return readCounterFromDisk(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  }
  if (format !== 'qcow2') {
    throw new GuestOptionsError('format', format, "must be 'raw' or 'qcow2'");
  }
  return withPrivateDir(async (dir) => {
    const out = join(dir, 'head.raw');
    await runQemuImg(
      [
        'dd',
        ...(options.forceShare ? ['-U'] : []),
        '-f',
        'qcow2',
        '-O',
        'raw',
        `bs=${SECTOR_SIZE}`,
        `count=${RECORD_LBA + 1}`,
        `if=${file}`,
        `of=${out}`,
      ],
      options,
    );
    return readCounterFromDisk(new Uint8Array(await readFile(out)));
  });
}

/** Where the guest's COM1 goes. */
export type GuestSerial =
  /** QEMU's stdin/stdout (spawn with pipes; write to stdin to test the echo). */
  | 'stdio'
  /** Appended to a file. */
  | { readonly file: string }
  /**
   * A UNIX socket QEMU listens on. With `wait: true` QEMU does not start the guest until a
   * client connects, so no output is lost; with `wait: false` (default) output written
   * before a client connects is dropped.
   */
  | { readonly socket: string; readonly wait?: boolean };

/** Options for `guestQemuArgs`. */
export interface GuestQemuArgsOptions {
  /** The disk image path. */
  readonly image: string;
  /** Its format. Default `'raw'`. */
  readonly format?: GuestImageFormat;
  /** `-machine` value. Default `'pc'` (i440fx); `'q35'` works too. */
  readonly machine?: string;
  /** Guest RAM in MiB. Default 32. */
  readonly memoryMiB?: number;
  /**
   * Accelerators in order of preference, one `-accel` each. Default `['kvm', 'tcg']`: KVM
   * when /dev/kvm works, else TCG.
   */
  readonly accel?: readonly ('kvm' | 'tcg')[];
  /** Disk controller. Default `'ide'`; `'virtio'` uses virtio-blk-pci. */
  readonly disk?: 'ide' | 'virtio';
  /** Block node name of the format node (the protocol node gets `-file`). Default `'disk0'`. */
  readonly nodeName?: string;
  /** COM1 destination. Default `'stdio'`. */
  readonly serial?: GuestSerial;
}

/** Escapes a value for QEMU's `key=value,...` option syntax (a comma is doubled). */
export function escapeQemuOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

function serialChardev(serial: GuestSerial): string {
  if (serial === 'stdio') return 'stdio,id=serial0,signal=off';
  if ('file' in serial)
    return `file,id=serial0,path=${escapeQemuOptionValue(resolve(serial.file))}`;
  const wait = serial.wait === true ? 'on' : 'off';
  return `socket,id=serial0,path=${escapeQemuOptionValue(resolve(serial.socket))},server=on,wait=${wait}`;
}

/**
 * The `qemu-system-x86_64` arguments (without the executable) that boot the guest from
 * `image`: no default devices, no display, COM1 on `serial`, the disk as the boot device.
 * Pass the array to `spawn` as is; append your own (`-qmp`, `-S`, …) after it.
 */
export function guestQemuArgs(options: GuestQemuArgsOptions): string[] {
  const memory = options.memoryMiB ?? 32;
  if (!Number.isInteger(memory) || memory < 2) {
    throw new GuestOptionsError('memoryMiB', memory, 'must be an integer >= 2');
  }
  const accel = options.accel ?? ['kvm', 'tcg'];
  if (accel.length === 0) throw new GuestOptionsError('accel', accel, 'must not be empty');
  const format = options.format ?? 'raw';
  const node = options.nodeName ?? 'disk0';
  const device = (options.disk ?? 'ide') === 'ide' ? 'ide-hd' : 'virtio-blk-pci';
  return [
    '-nodefaults',
    '-display',
    'none',
    '-machine',
    options.machine ?? 'pc',
    '-m',
    String(memory),
    ...accel.flatMap((a) => ['-accel', a]),
    '-chardev',
    serialChardev(options.serial ?? 'stdio'),
    '-serial',
    'chardev:serial0',
    '-blockdev',
    JSON.stringify({
      driver: 'file',
      filename: resolve(options.image),
      'node-name': `${node}-file`,
    }),
    '-blockdev',
    JSON.stringify({ driver: format, file: `${node}-file`, 'node-name': node }),
    '-device',
    `${device},drive=${escapeQemuOptionValue(node)},bootindex=1`,
  ];
}
