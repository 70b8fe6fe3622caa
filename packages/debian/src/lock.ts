/**
 * A cross-process lock made of a directory (mkdir is atomic): two processes sharing one cache
 * (parallel test workers, a CI step and a developer) never run apt on the same lists at once.
 * A lock whose owner pid is gone is taken over. (Two processes taking over the same stale
 * lock at the same instant could both proceed: rare — it needs a crashed owner — and not
 * guarded against.)
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` while holding the lock directory `lockDir`. */
export async function withDirLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // No pid file: being created right now (or its creator died in between: stale after 10 s).
      const owner = Number(await readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => 'NaN'));
      const age = await stat(lockDir).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0, // removed meanwhile: the next mkdir decides
      );
      if (Number.isInteger(owner) ? !alive(owner) : age > 10_000) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
