/**
 * The Linux test guest (`@qmpkit/testguest`'s Debian kernel + busybox + qemu-ga initramfs)
 * as a `VmConfig` the machine package runs, with an ext4 data disk and the agent on a UNIX
 * socket chardev; a writer loop in the guest; and host-side checks of a disk image
 * (`e2fsck -fn`, and every written file complete, read with `debugfs`). Shared by
 * `disk-only-linux.qemu.test.ts` and `test/bench/freeze-trials.ts`. Not published.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import type { GuestAgent } from '@qmpkit/guest-agent';
import {
  AGENT_PORT,
  AGENT_PORT_ID,
  buildLinuxGuest,
  linuxGuestKey,
  READY_MARKER,
} from '@qmpkit/testguest';
import { REPO_CACHE_DIR, TEST_ACCEL } from '@qmpkit/testguest/test-support';

export const LINUX_READY = new RegExp(READY_MARKER);

/** Why the Linux-guest suites skip outside CI (the guest is built by `pnpm testguest:linux`). */
export function linuxGuestSkipReason(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  return existsSync(path.join(REPO_CACHE_DIR, 'linux-guest', linuxGuestKey('bookworm', 'none')))
    ? undefined
    : 'the Linux guest is not built; run `pnpm testguest:linux` (CI does)';
}

/** Runs a host program (argument array); resolves with its exit code and output. */
export function runHost(
  command: string,
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A raw ext4 image of `mib` MiB (bookworm's mkfs.ext4: checksums on, as the notes say). */
export async function makeExt4(file: string, mib: number): Promise<void> {
  await writeFile(file, '');
  const mkfs = await runHost('mkfs.ext4', ['-q', '-F', '-L', 'data', file, `${mib}M`]);
  if (mkfs.code !== 0) throw new Error(`mkfs.ext4 failed: ${mkfs.stderr}`);
}

export interface LinuxVmOptions {
  readonly dir: string;
  readonly dataDisk: string;
  /** Default 128. */
  readonly memoryMiB?: number;
  /** Add a virtio console on chardev `hvc` (the guest's `/dev/hvc0`). */
  readonly virtioConsole?: boolean;
}

/** The guest on TCG: COM1 on chardev `ser0`, the agent on `<dir>/qga.sock`, the disk on virtio-blk. */
export async function linuxVmConfig(options: LinuxVmOptions): Promise<VmConfig> {
  const guest = await buildLinuxGuest({ cacheDir: REPO_CACHE_DIR });
  return {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: (options.memoryMiB ?? 128) * MiB },
    chardevs: [
      { id: 'ser0', backend: { type: 'null', data: {} } },
      {
        id: 'qga0',
        backend: {
          type: 'socket',
          data: {
            addr: { type: 'unix', data: { path: path.join(options.dir, 'qga.sock') } },
            server: true,
            wait: false,
          },
        },
      },
      ...(options.virtioConsole
        ? [{ id: 'hvc', backend: { type: 'null' as const, data: {} } }]
        : []),
    ],
    blockdevs: [
      { driver: 'file', 'node-name': 'data-file', filename: options.dataDisk },
      { driver: 'raw', 'node-name': 'data', file: 'data-file' },
    ],
    devices: [
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
      { driver: 'virtio-serial-pci', id: 'vser0' },
      {
        driver: 'virtserialport',
        id: AGENT_PORT_ID,
        bus: 'vser0.0',
        chardev: 'qga0',
        name: AGENT_PORT,
      },
      ...(options.virtioConsole
        ? [{ driver: 'virtconsole' as const, id: 'hvc0', bus: 'vser0.0', chardev: 'hvc' }]
        : []),
      { driver: 'virtio-blk-pci', id: 'vda', drive: 'data' },
    ],
    staticArgs: ['-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.append],
  };
}

/**
 * The writer loop: files of 64 KiB, each the line `file <i>` repeated, written to a temp
 * name and renamed (so a complete filesystem holds only complete files), the newest index in
 * `/data/w/last` (same way); only the newest 100 files are kept.
 */
export const WRITER_SCRIPT = `mkdir -p /data/w; i=0
while :; do
  i=$((i+1))
  yes "file $i" | head -c 65536 > /data/w/tmp
  mv /data/w/tmp /data/w/f$i
  echo $i > /data/w/last.tmp; mv /data/w/last.tmp /data/w/last
  [ $i -gt 100 ] && rm -f /data/w/f$((i-100))
done`;

/** Starts the writer in the background (its output to /dev/null; guest-exec returns at once). */
export async function startWriter(agent: GuestAgent): Promise<void> {
  const r = await agent.exec(['/bin/sh', '-c', `(${WRITER_SCRIPT}) </dev/null >/dev/null 2>&1 &`]);
  if (r.exitcode !== 0) throw new Error(`the writer did not start: ${r.stderr}`);
}

/** The writer's newest complete file index as the guest sees it (0 before the first). */
export async function writerIndex(agent: GuestAgent): Promise<number> {
  const r = await agent.exec(['/bin/sh', '-c', 'cat /data/w/last 2>/dev/null || echo 0']);
  return Number.parseInt(r.stdout.trim(), 10);
}

/** Resolves once the writer's index is above `n` (polls the guest; progress, not time). */
export async function writerPast(agent: GuestAgent, n: number): Promise<number> {
  for (;;) {
    const i = await writerIndex(agent);
    if (i > n) return i;
  }
}

export interface DiskCheck {
  /** `e2fsck -fn` exit code (0: clean). */
  readonly fsckCode: number | null;
  readonly fsckOutput: string;
  /** Files `f<i>` found under /w. */
  readonly files: number;
  /** Names of files whose size or content is not what the writer writes. */
  readonly incomplete: readonly string[];
  /** The index in /w/last (NaN when missing). */
  readonly last: number;
}

/**
 * Reads the ext4 filesystem at the top of `image` (a chain is followed: `qemu-img convert`
 * to raw, `-U` because the VM may hold the chain), runs `e2fsck -fn`, and extracts /w with
 * `debugfs rdump` to check every file.
 */
export async function checkDisk(
  image: string,
  format: string,
  qemuImg = 'qemu-img',
): Promise<DiskCheck> {
  const scratch = await mkdtemp(path.join(path.dirname(image), 'check-'));
  try {
    const raw = path.join(scratch, 'disk.raw');
    const convert = await runHost(qemuImg, [
      'convert',
      '-U',
      '-f',
      format,
      '-O',
      'raw',
      image,
      raw,
    ]);
    if (convert.code !== 0) throw new Error(`qemu-img convert failed: ${convert.stderr}`);
    const fsck = await runHost('e2fsck', ['-fn', raw]);
    const out = path.join(scratch, 'out');
    await runHost('mkdir', [out]);
    const dump = await runHost('debugfs', ['-R', `rdump /w ${out}`, raw]);
    const dir = path.join(out, 'w');
    const names = existsSync(dir) ? await readdir(dir) : [];
    if (!existsSync(dir) && dump.code !== 0) throw new Error(`debugfs failed: ${dump.stderr}`);
    const incomplete: string[] = [];
    let files = 0;
    for (const name of names) {
      const m = /^f(\d+)$/.exec(name);
      if (m === null) continue;
      files += 1;
      const data = await readFile(path.join(dir, name));
      const line = Buffer.from(`file ${m[1]}\n`);
      const expected = Buffer.alloc(65536);
      for (let o = 0; o < expected.length; o += line.length) line.copy(expected, o);
      if (!data.equals(expected)) incomplete.push(name);
    }
    const last = names.includes('last')
      ? Number.parseInt((await readFile(path.join(dir, 'last'), 'utf8')).trim(), 10)
      : Number.NaN;
    return {
      fsckCode: fsck.code,
      fsckOutput: `${fsck.stdout}${fsck.stderr}`,
      files,
      incomplete,
      last,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
