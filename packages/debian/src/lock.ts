/**
 * A cross-process lock made of a directory (mkdir is atomic): two processes sharing one cache
 * (parallel test workers, a CI step and a developer) never run apt on the same lists at once.
 * A lock whose owner pid is gone is taken over under a second, short-lived guard directory
 * (`<lock>.takeover`): whoever holds it checks the lock again before removing it, so two
 * callers that both saw the same stale lock cannot remove each other's fresh one (they did:
 * the loser's rm took the winner's new lock between its mkdir and its pid file).
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Age of `dir` in ms (0 when it is gone: the next mkdir decides). */
const ageOf = (dir: string) =>
  stat(dir).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0,
  );

/**
 * Whether the lock's owner is gone: its pid is not alive, or it has no pid file 10 s after it
 * was made (a pid file missing for less is being written right now).
 */
async function stale(lockDir: string): Promise<boolean> {
  const owner = Number(await readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => 'NaN'));
  return Number.isInteger(owner) ? !alive(owner) : (await ageOf(lockDir)) > 10_000;
}

/** Removes a stale lock, checked again under the takeover guard (one taker at a time). */
async function takeOver(lockDir: string): Promise<void> {
  const guard = `${lockDir}.takeover`;
  try {
    await mkdir(guard);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Another caller is taking over; a guard left by a crash inside it goes after 10 s.
    if ((await ageOf(guard)) > 10_000) await rm(guard, { recursive: true, force: true });
    await sleep(20);
    return;
  }
  try {
    if (await stale(lockDir)) await rm(lockDir, { recursive: true, force: true });
  } finally {
    await rm(guard, { recursive: true, force: true });
  }
}

/** Runs `fn` while holding the lock directory `lockDir`. */
export async function withDirLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      await mkdir(lockDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await stale(lockDir)) await takeOver(lockDir);
      else await sleep(200);
      continue;
    }
    try {
      await writeFile(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      // Removed under us (a takeover that judged it stale): not ours; try again.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
