/**
 * `@qmpkit/debian`: download Debian packages with private apt lists and unpack them with
 * `dpkg -x` into a cache directory. The host's apt sources, state and installed packages are
 * never changed; apt runs with `-o Dir::…` options pointing into a directory the caller owns.
 *
 * ```ts
 * const apt = new AptRepo({ dir: '/abs/.cache/debian/apt', suites: ['bookworm', 'bookworm-backports'] });
 * const pkgs = await apt.resolve(['qemu-system-x86'], { release: 'bookworm-backports' });
 * const debs = await apt.download(pkgs, '/abs/.cache/debian/debs');
 * await unpackDebs(debs.map((d) => d.file), '/abs/.cache/qemu/10.0/root');
 * ```
 */
export {
  AptRepo,
  type AptRepoOptions,
  DEBIAN_KEYRING,
  DEFAULT_MIRROR,
  type DebPackage,
  type DownloadedDeb,
  sha256File,
} from './apt.js';
export {
  cacheRepo,
  DEBIAN_SUITES,
  type DebianSuite,
  defaultCacheDir,
} from './cache.js';
export {
  type ControlRecord,
  downloadFileName,
  parseControl,
  parseDepends,
  parsePolicy,
} from './control.js';
export {
  DebianChecksumError,
  DebianOptionsError,
  DebianPackageNotFoundError,
  DebianToolError,
  isDebianChecksumError,
  isDebianOptionsError,
  isDebianPackageNotFoundError,
  isDebianToolError,
} from './errors.js';
export { withDirLock } from './lock.js';
export { runTool } from './run.js';
export { cachedDir, unpackDebs } from './unpack.js';
