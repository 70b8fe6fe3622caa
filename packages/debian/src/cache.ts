/** qmpkit's shared download cache: where it is, and the one apt state every download uses. */
import { homedir } from 'node:os';
import path from 'node:path';
import { AptRepo } from './apt.js';

/** The Debian suites every qmpkit download indexes (one set of private lists, shared). */
export const DEBIAN_SUITES = ['bookworm', 'bookworm-backports'] as const;
export type DebianSuite = (typeof DEBIAN_SUITES)[number];

/**
 * The default cache: `$QMPKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/qmpkit`, else
 * `~/.cache/qmpkit`. (The repository's own scripts and tests use `<repo>/.cache`.)
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.QMPKIT_CACHE_DIR) return path.resolve(env.QMPKIT_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return path.join(path.resolve(env.XDG_CACHE_HOME), 'qmpkit');
  return path.join(homedir(), '.cache', 'qmpkit');
}

/** The private apt state under `cacheDir` (`<cacheDir>/debian/apt`) for `DEBIAN_SUITES`. */
export function cacheRepo(cacheDir: string): AptRepo {
  return new AptRepo({
    dir: path.join(path.resolve(cacheDir), 'debian', 'apt'),
    suites: DEBIAN_SUITES,
  });
}
