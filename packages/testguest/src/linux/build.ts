/**
 * `buildLinuxGuest()`: a small Linux guest for real-QEMU tests, built from Debian packages
 * without installing anything on the host. Debian's kernel (its uncompressed `vmlinux`, so
 * QEMU boots it directly through PVH and TCG skips the XZ decompression), a few modules,
 * `busybox-static`, and `qemu-guest-agent` with exactly the shared libraries its ELF headers
 * name, all taken from the unpacked packages, in an initramfs written by `writeCpio`.
 *
 * Cached under `<cacheDir>/linux-guest/<key>/`, where `key` hashes everything that decides
 * the output besides the packages (the builder's format, the init script, the module list,
 * the agent's suite, the compression); a hit needs no network. `refresh: true` rebuilds with
 * the newest packages.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  cachedDir,
  cacheRepo,
  type DebianSuite,
  type DebPackage,
  defaultCacheDir,
  unpackDebs,
} from '@qmpkit/debian';
import { GuestOptionsError, LinuxGuestBuildError } from '../errors.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { readElfDynamic } from './elf.js';
import {
  AGENT_PORT,
  GUEST_MODULES,
  INIT_SCRIPT,
  POWER_BUTTON_SCRIPT,
  READY_MARKER,
  SHUTDOWN_SCRIPT,
  TICK_PREFIX,
} from './init.js';
import { moduleKey, moduleLoadOrder } from './kmod.js';

/** Bumped whenever the builder's output changes for the same inputs. */
export const LINUX_GUEST_FORMAT = 1;

export interface BuildLinuxGuestOptions {
  /** Cache root (default `defaultCacheDir()`; the repository's scripts pass `<repo>/.cache`). */
  readonly cacheDir?: string;
  /** Suite of `qemu-guest-agent`: `bookworm` (7.2, default) or `bookworm-backports` (10.0). */
  readonly agentSuite?: DebianSuite;
  /** Initramfs compression: `none` boots fastest under TCG (default), `gzip` is ~3× smaller. */
  readonly compression?: 'none' | 'gzip';
  /** Rebuild even when the cache holds this build. */
  readonly refresh?: boolean;
  /** One line per step. */
  readonly onProgress?: (message: string) => void;
}

/** A built guest: what to pass to `-kernel` and `-initrd`, and where it came from. */
export interface LinuxGuest {
  /** Uncompressed ELF kernel (`-kernel`; PVH direct boot). */
  readonly kernel: string;
  /** The initramfs (`-initrd`). */
  readonly initrd: string;
  /** Kernel command line the guest expects (`-append`). */
  readonly append: string;
  /** The cache entry holding both. */
  readonly dir: string;
  /** `false` when this call built it. */
  readonly cached: boolean;
  readonly manifest: LinuxGuestManifest;
}

export interface LinuxGuestManifest {
  readonly format: 'qmpkit-linux-guest';
  readonly formatVersion: typeof LINUX_GUEST_FORMAT;
  readonly key: string;
  readonly kernelRelease: string;
  readonly agentSuite: DebianSuite;
  readonly compression: 'none' | 'gzip';
  readonly modules: readonly string[];
  readonly libraries: readonly string[];
  readonly packages: readonly { name: string; version: string; sha256: string }[];
  readonly readyMarker: string;
  readonly tickPrefix: string;
  readonly agentPort: string;
  readonly initrdBytes: number;
  readonly kernelBytes: number;
}

export const LINUX_GUEST_APPEND = 'console=ttyS0 quiet panic=-1';

/** The cache key of a build with these options. */
export function linuxGuestKey(agentSuite: DebianSuite, compression: 'none' | 'gzip'): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        format: LINUX_GUEST_FORMAT,
        agentSuite,
        compression,
        init: INIT_SCRIPT,
        shutdown: SHUTDOWN_SCRIPT,
        power: POWER_BUTTON_SCRIPT,
        modules: GUEST_MODULES,
        append: LINUX_GUEST_APPEND,
      }),
    )
    .digest('hex')
    .slice(0, 16);
}

/** Builds (or finds in the cache) the Linux test guest. */
export async function buildLinuxGuest(options: BuildLinuxGuestOptions = {}): Promise<LinuxGuest> {
  const agentSuite = options.agentSuite ?? 'bookworm';
  if (agentSuite !== 'bookworm' && agentSuite !== 'bookworm-backports')
    throw new GuestOptionsError('agentSuite', agentSuite, 'bookworm or bookworm-backports');
  const compression = options.compression ?? 'none';
  if (compression !== 'none' && compression !== 'gzip')
    throw new GuestOptionsError('compression', compression, "'none' or 'gzip'");
  const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
  const key = linuxGuestKey(agentSuite, compression);
  const target = path.join(cacheDir, 'linux-guest', key);
  if (options.refresh) await rm(target, { recursive: true, force: true });
  const progress = options.onProgress ?? (() => undefined);
  const { dir, cached } = await cachedDir(target, (staging) =>
    build(staging, { cacheDir, agentSuite, compression, key, progress }),
  );
  const manifest = JSON.parse(
    await readFile(path.join(dir, 'manifest.json'), 'utf8'),
  ) as LinuxGuestManifest;
  return {
    kernel: path.join(dir, 'vmlinux'),
    initrd: path.join(dir, 'initrd.img'),
    append: LINUX_GUEST_APPEND,
    dir,
    cached,
    manifest,
  };
}

interface BuildContext {
  readonly cacheDir: string;
  readonly agentSuite: DebianSuite;
  readonly compression: 'none' | 'gzip';
  readonly key: string;
  readonly progress: (message: string) => void;
}

async function build(staging: string, ctx: BuildContext): Promise<void> {
  const apt = cacheRepo(ctx.cacheDir);
  ctx.progress(`updating private apt lists in ${apt.dir}`);
  await apt.update();
  const [pointer] = await apt.resolve(['linux-image-amd64'], { release: 'bookworm' });
  const kernelName = pointer?.depends[0]?.[0];
  if (!kernelName?.startsWith('linux-image-'))
    throw new LinuxGuestBuildError('contents', 'linux-image-amd64 names no linux-image-* package');
  const base = await apt.resolve([kernelName, 'busybox-static'], { release: 'bookworm' });
  // qemu-ga and the library packages below it; which libraries are copied is decided by ELF.
  const agent = await apt.closure(['qemu-guest-agent'], {
    release: ctx.agentSuite,
    follow: (name) => name.startsWith('lib'),
  });
  const all = [...base, ...agent];
  const mb = (all.reduce((s, p) => s + p.size, 0) / 1e6).toFixed(1);
  ctx.progress(
    `downloading ${all.length} packages (${mb} MB): ${all.map((p) => p.name).join(', ')}`,
  );
  // Shared download dir: another build (a changed init script, the other agent suite, another
  // compression) reuses the downloads; files of versions no build uses any more are pruned.
  const debsDir = path.join(ctx.cacheDir, 'debian', 'debs');
  let debs: { package: DebPackage; file: string }[];
  try {
    debs = await apt.download(all, debsDir);
  } catch (cause) {
    throw new LinuxGuestBuildError('download', (cause as Error).message, { cause });
  }
  const fileOf = (name: string) => debs.find((d) => d.package.name === name)?.file ?? '';
  const kernelRoot = path.join(staging, 'x', 'kernel');
  const busyboxRoot = path.join(staging, 'x', 'busybox');
  const sysRoot = path.join(staging, 'x', 'sys');
  ctx.progress('unpacking with dpkg -x');
  await unpackDebs([fileOf(kernelName)], kernelRoot);
  await unpackDebs([fileOf('busybox-static')], busyboxRoot);
  await unpackDebs(
    agent.map((p) => fileOf(p.name)),
    sysRoot,
  );

  const kernelRelease = kernelName.slice('linux-image-'.length);
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (p: string) => {
    if (p === '.') return;
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ type: 'dir', path: d });
      }
    }
  };
  const addFile = (p: string, data: Uint8Array, mode = 0o644) => {
    addDir(path.posix.dirname(p));
    entries.push({ type: 'file', path: p, data, mode });
  };
  const addLink = (p: string, target: string) => {
    addDir(path.posix.dirname(p));
    entries.push({ type: 'symlink', path: p, target });
  };
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'data', 'root', 'etc', 'var/log']) addDir(d);
  entries.push({ type: 'char', path: 'dev/console', major: 5, minor: 1 });
  addLink('var/run', '/run');
  addLink('etc/mtab', '/proc/mounts');

  // busybox and its applet links
  const busybox = path.join(busyboxRoot, 'bin/busybox');
  if (!existsSync(busybox))
    throw new LinuxGuestBuildError('contents', 'busybox-static holds no bin/busybox');
  addFile('bin/busybox', readFileSync(busybox), 0o755);
  const applets = (await capture(busybox, ['--list-full'])).split('\n').filter((a) => a !== '');
  const ownFiles = new Set(['sbin/shutdown', 'init']);
  for (const applet of applets)
    if (applet !== 'bin/busybox' && !ownFiles.has(applet)) addLink(applet, '/bin/busybox');

  // qemu-ga and exactly the libraries it loads, resolved inside the unpacked packages
  const qga = path.join(sysRoot, 'usr/sbin/qemu-ga');
  if (!existsSync(qga))
    throw new LinuxGuestBuildError('contents', 'qemu-guest-agent holds no usr/sbin/qemu-ga');
  addFile('usr/sbin/qemu-ga', readFileSync(qga), 0o755);
  const libraries = collectLibraries(sysRoot, qga);
  for (const lib of libraries)
    addFile(`lib/x86_64-linux-gnu/${lib.soname}`, readFileSync(lib.file), 0o755);
  const interp = readElfDynamic(readFileSync(qga), 'qemu-ga').interpreter;
  if (interp) {
    const soname = path.posix.basename(interp);
    if (!libraries.some((l) => l.soname === soname))
      throw new LinuxGuestBuildError('libraries', `qemu-ga's interpreter ${interp} was not found`);
    const p = interp.replace(/^\//, '');
    if (p !== `lib/x86_64-linux-gnu/${soname}`) addLink(p, `/lib/x86_64-linux-gnu/${soname}`);
  }

  // kernel modules in load order
  const moduleFiles = indexModules(path.join(kernelRoot, 'lib/modules', kernelRelease, 'kernel'));
  const order = moduleLoadOrder(GUEST_MODULES, (key) => {
    const file = moduleFiles.get(key);
    return file ? readFileSync(file) : undefined;
  });
  for (const m of order) addFile(`lib/modules/${m}.ko`, readFileSync(moduleFiles.get(m) ?? ''));
  addFile('etc/modules.load', new TextEncoder().encode(`${order.join('\n')}\n`));

  // our userspace
  const text = (s: string) => new TextEncoder().encode(s);
  addFile('init', text(INIT_SCRIPT), 0o755);
  addFile('sbin/shutdown', text(SHUTDOWN_SCRIPT), 0o755);
  addFile('etc/acpi/PWRF/00000080', text(POWER_BUTTON_SCRIPT), 0o755);

  const cpio = writeCpio(entries);
  const initrd = ctx.compression === 'gzip' ? gzipSync(cpio, { level: 9 }) : cpio;
  await writeFile(path.join(staging, 'initrd.img'), initrd);

  ctx.progress('extracting the uncompressed kernel from vmlinuz');
  const vmlinuz = path.join(kernelRoot, 'boot', `vmlinuz-${kernelRelease}`);
  if (!existsSync(vmlinuz))
    throw new LinuxGuestBuildError(
      'contents',
      `${kernelName} holds no boot/vmlinuz-${kernelRelease}`,
    );
  const vmlinux = await extractVmlinux(readFileSync(vmlinuz));
  await writeFile(path.join(staging, 'vmlinux'), vmlinux);
  await rm(path.join(staging, 'x'), { recursive: true, force: true });
  const used = new Set(debs.map((d) => path.basename(d.file)));
  for (const name of readdirSync(debsDir)) {
    // the big ones: kernel and busybox versions this build no longer uses
    if (!used.has(name) && /^(linux-image-|busybox-static_)/.test(name))
      await rm(path.join(debsDir, name), { force: true });
  }

  const manifest: LinuxGuestManifest = {
    format: 'qmpkit-linux-guest',
    formatVersion: LINUX_GUEST_FORMAT,
    key: ctx.key,
    kernelRelease,
    agentSuite: ctx.agentSuite,
    compression: ctx.compression,
    modules: order,
    libraries: libraries.map((l) => l.soname),
    packages: [pointer, ...all]
      .filter((p): p is DebPackage => p !== undefined)
      .map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })),
    readyMarker: READY_MARKER,
    tickPrefix: TICK_PREFIX,
    agentPort: AGENT_PORT,
    initrdBytes: initrd.length,
    kernelBytes: vmlinux.length,
  };
  await writeFile(path.join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

const LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'lib', 'usr/lib'];

/** Follows symlinks inside `root` (absolute targets are read as inside it, never the host). */
function resolveInRoot(root: string, file: string): string | undefined {
  let current = file;
  for (let hops = 0; hops < 40; hops++) {
    if (!current.startsWith(`${root}/`)) return undefined;
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(current);
    } catch {
      return undefined; // dangling link: not in this root
    }
    if (!st.isSymbolicLink()) return st.isFile() ? current : undefined;
    const target = readlinkSync(current);
    current = target.startsWith('/')
      ? path.join(root, target)
      : path.resolve(path.dirname(current), target);
  }
  return undefined;
}

/** The transitive `DT_NEEDED` closure of `executable` (plus its interpreter) within `root`. */
export function collectLibraries(
  root: string,
  executable: string,
): { soname: string; file: string }[] {
  const found = new Map<string, string>();
  const queue: { soname: string; by: string }[] = [];
  const first = readElfDynamic(readFileSync(executable), path.basename(executable));
  if (first.interpreter)
    queue.push({ soname: path.posix.basename(first.interpreter), by: 'the interpreter entry' });
  for (const n of first.needed) queue.push({ soname: n, by: path.basename(executable) });
  while (queue.length > 0) {
    const { soname, by } = queue.shift() ?? { soname: '', by: '' };
    if (found.has(soname)) continue;
    const file = LIB_DIRS.map((d) => resolveInRoot(root, path.join(root, d, soname))).find(
      (f) => f !== undefined,
    );
    if (!file) {
      throw new LinuxGuestBuildError(
        'libraries',
        `${soname} (needed by ${by}) is in none of the unpacked packages`,
      );
    }
    found.set(soname, file);
    for (const n of readElfDynamic(readFileSync(file), soname).needed)
      queue.push({ soname: n, by: soname });
  }
  return [...found]
    .map(([soname, file]) => ({ soname, file }))
    .sort((a, b) => a.soname.localeCompare(b.soname));
}

function indexModules(dir: string): Map<string, string> {
  if (!existsSync(dir))
    throw new LinuxGuestBuildError(
      'contents',
      `the kernel package has no ${path.basename(dir)} module tree`,
    );
  const map = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ko')) map.set(moduleKey(name.slice(0, -3)), p);
    }
  };
  walk(dir);
  return map;
}

/** vmlinuz (bzImage with an XZ payload) → the ELF vmlinux, with the host's `xz`. */
export async function extractVmlinux(vmlinuz: Uint8Array): Promise<Uint8Array> {
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const at = Buffer.from(vmlinuz.buffer, vmlinuz.byteOffset, vmlinuz.byteLength).indexOf(magic);
  if (at < 0) throw new LinuxGuestBuildError('kernel', 'vmlinuz holds no XZ payload');
  let elf: Buffer;
  try {
    elf = await capture(
      'xz',
      ['--decompress', '--stdout', '--single-stream'],
      vmlinuz.subarray(at),
      true,
    );
  } catch (cause) {
    throw new LinuxGuestBuildError(
      'kernel',
      `xz could not unpack vmlinuz: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (elf.subarray(0, 4).toString('latin1') !== '\x7fELF')
    throw new LinuxGuestBuildError('kernel', 'the XZ payload of vmlinuz is not an ELF kernel');
  return elf;
}

function capture(command: string, args: readonly string[]): Promise<string>;
function capture(
  command: string,
  args: readonly string[],
  input: Uint8Array,
  binary: true,
): Promise<Buffer>;
function capture(
  command: string,
  args: readonly string[],
  input?: Uint8Array,
  binary?: true,
): Promise<string | Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) {
        reject(
          new LinuxGuestBuildError(
            'contents',
            `${command} ${args.join(' ')} exited ${String(code)}: ${err.trim()}`,
          ),
        );
        return;
      }
      const all = Buffer.concat(out);
      resolve(binary ? all : all.toString('utf8'));
    });
    // EPIPE when the tool exits early is reported through its exit code above.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? null);
  });
}
