/**
 * `fetchQemu('10.0')`: downloads a QEMU release's Debian packages with private apt lists and
 * unpacks them with `dpkg -x` into `<cache>/qemu/<release>/root` — never `apt-get install`,
 * which would replace the system's QEMU. The result is described by a `QemuBinary`.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cachedDir, cacheRepo, type DebianSuite, unpackDebs } from '@qmpkit/debian';
import {
  defaultCacheDir,
  type QemuBinary,
  type QemuCacheManifest,
  qemuCacheDir,
  resolveQemuBinary,
  unpackedRootLayout,
} from './binary.js';
import { QemuBinaryError } from './errors.js';

/** Where a QEMU release comes from. */
export interface QemuDownload {
  /** The suite whose version is taken. */
  readonly suite: DebianSuite;
  /** Binary packages unpacked together. */
  readonly packages: readonly string[];
}

/**
 * Releases `fetchQemu` knows. The opengl and spice module packages are needed although no
 * test uses a GPU or SPICE: QEMU loads every module it finds at start-up and refuses modules
 * of another build, so each module dir must be complete.
 */
export const QEMU_DOWNLOADS: Readonly<Record<string, QemuDownload>> = {
  '10.0': {
    suite: 'bookworm-backports',
    packages: [
      'qemu-system-x86',
      'qemu-system-common',
      'qemu-system-data',
      'qemu-system-modules-opengl',
      'qemu-system-modules-spice',
    ],
  },
};

/**
 * The tools of a release (`qemu-img`, `qemu-nbd`, `qemu-storage-daemon`), unpacked apart from
 * the emulator into `<cache>/qemu-utils/<release>/root`: Debian moved `qemu-storage-daemon`
 * from qemu-system-common to qemu-utils in 8.0, and a cache filled before the tools were
 * fetched keeps its emulator root untouched (others may be running it) — the tools land beside.
 */
export const QEMU_TOOL_DOWNLOADS: Readonly<Record<string, QemuDownload>> = {
  '10.0': { suite: 'bookworm-backports', packages: ['qemu-utils'] },
};

/** Where `fetchQemu(release)` unpacks a release's tools inside `cacheDir`. */
export function qemuToolsCacheDir(cacheDir: string, release: string): string {
  return path.join(cacheDir, 'qemu-utils', release);
}

export interface FetchQemuOptions {
  /** Default `defaultCacheDir()`. */
  readonly cacheDir?: string;
  /** Called with one line per step (for a CLI or a log). */
  readonly onProgress?: (message: string) => void;
}

/** Fetches (or finds in the cache) QEMU `release`; resolves to its checked `QemuBinary`. */
export async function fetchQemu(
  release: string,
  options: FetchQemuOptions = {},
): Promise<{ binary: QemuBinary; cached: boolean; dir: string }> {
  const download = QEMU_DOWNLOADS[release];
  if (!download) {
    throw new QemuBinaryError('unknown-release', release, {
      detail: `no download is known for QEMU ${release} (known: ${Object.keys(QEMU_DOWNLOADS).join(', ')})`,
    });
  }
  const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
  const progress = options.onProgress ?? (() => undefined);
  const { dir, cached } = await cachedDir(qemuCacheDir(cacheDir, release), async (staging) => {
    const apt = cacheRepo(cacheDir);
    progress(`updating private apt lists in ${apt.dir}`);
    await apt.update();
    const packages = await apt.resolve(download.packages, { release: download.suite });
    const wrong = packages.find((p) => !p.version.replace(/^\d+:/, '').startsWith(`${release}.`));
    if (wrong) {
      throw new QemuBinaryError('version-mismatch', release, {
        detail: `${download.suite} now offers ${wrong.name} ${wrong.version}, not ${release}.x`,
        version: wrong.version,
      });
    }
    const size = packages.reduce((sum, p) => sum + p.size, 0);
    progress(
      `downloading ${packages.map((p) => `${p.name} ${p.version}`).join(', ')} (${(size / 1e6).toFixed(1)} MB)`,
    );
    const debsDir = path.join(staging, 'debs');
    const debs = await apt.download(packages, debsDir);
    const root = path.join(staging, 'root');
    progress(`unpacking with dpkg -x into ${root}`);
    await unpackDebs(
      debs.map((d) => d.file),
      root,
    );
    await rm(debsDir, { recursive: true, force: true }); // the unpacked root is all that is used
    const binary = await probeStaging(root, release);
    const manifest: QemuCacheManifest = {
      format: 'qmpkit-qemu-cache',
      formatVersion: 1,
      release,
      version: binary.version,
      suite: download.suite,
      packages: packages.map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })),
    };
    await writeFile(path.join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  });
  const tools = QEMU_TOOL_DOWNLOADS[release];
  let toolsCached = true;
  if (tools !== undefined)
    toolsCached = (await fetchTools(cacheDir, release, tools, progress)).cached;
  const binary = await resolveQemuBinary(release, { cacheDir });
  return { binary, cached: cached && toolsCached, dir };
}

/** Unpacks a release's tool packages into `qemuToolsCacheDir` (once; later calls find it). */
async function fetchTools(
  cacheDir: string,
  release: string,
  download: QemuDownload,
  progress: (message: string) => void,
): Promise<{ dir: string; cached: boolean }> {
  return cachedDir(qemuToolsCacheDir(cacheDir, release), async (staging) => {
    const apt = cacheRepo(cacheDir);
    await apt.update();
    const packages = await apt.resolve(download.packages, { release: download.suite });
    const wrong = packages.find((p) => !p.version.replace(/^\d+:/, '').startsWith(`${release}.`));
    if (wrong) {
      throw new QemuBinaryError('version-mismatch', release, {
        detail: `${download.suite} now offers ${wrong.name} ${wrong.version}, not ${release}.x`,
        version: wrong.version,
      });
    }
    progress(`downloading ${packages.map((p) => `${p.name} ${p.version}`).join(', ')}`);
    const debsDir = path.join(staging, 'debs');
    const debs = await apt.download(packages, debsDir);
    await unpackDebs(
      debs.map((d) => d.file),
      path.join(staging, 'root'),
    );
    await rm(debsDir, { recursive: true, force: true });
    const manifest = {
      format: 'qmpkit-qemu-tools-cache',
      formatVersion: 1,
      release,
      suite: download.suite,
      packages: packages.map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })),
    };
    await writeFile(path.join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  });
}

/** Checks the unpacked binary runs (with its own modules) before the cache entry is committed. */
async function probeStaging(root: string, release: string): Promise<QemuBinary> {
  const binary = await resolveQemuBinary(unpackedRootLayout(root).executable);
  if (binary.release !== release) {
    throw new QemuBinaryError('version-mismatch', release, {
      detail: `the unpacked binary is QEMU ${binary.version}`,
      version: binary.version,
    });
  }
  return binary;
}
