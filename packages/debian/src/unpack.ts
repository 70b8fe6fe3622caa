/** Unpacking `.deb` files with `dpkg -x` (never `dpkg -i`), and complete-or-absent cache dirs. */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { withDirLock } from './lock.js';
import { runTool } from './run.js';

/** Extracts each `.deb`'s files into `into` (created if missing); maintainer scripts never run. */
export async function unpackDebs(files: readonly string[], into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  for (const file of files) await runTool('dpkg', ['-x', file, into]);
}

/**
 * Returns `target` if it exists; otherwise runs `build(staging)` on a fresh staging directory
 * and renames it to `target`, so the cache entry is complete or absent, never half-written.
 * Concurrent callers for the same target wait for one another (a lock beside it).
 */
export async function cachedDir(
  target: string,
  build: (staging: string) => Promise<void>,
): Promise<{ dir: string; cached: boolean }> {
  if (existsSync(target)) return { dir: target, cached: true };
  return withDirLock(`${target}.lock`, async () => {
    if (existsSync(target)) return { dir: target, cached: true };
    const staging = `${target}.partial`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    try {
      await build(staging);
      await mkdir(path.dirname(target), { recursive: true });
      await rename(staging, target);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return { dir: target, cached: false };
  });
}
