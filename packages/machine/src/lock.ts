/**
 * One manager per VM directory: a lock file in the run directory naming the process that
 * holds it (pid and start time, so a reused pid is never mistaken for the holder).
 *
 * The lock is made complete in a temp file and hard-linked to its name (`link` fails with
 * EEXIST when another manager holds it), so a reader never sees a half-written lock. A lock
 * whose holder is gone (or is another process under a reused pid) is stale and taken over.
 * No timers, no mtime heartbeats: a manager whose event loop is busy for a minute still
 * holds its lock, and a crashed one frees it at once.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { RunDirLockedError } from './errors.js';
import { processStat } from './proc.js';

export const LOCK_FILE = 'manager.lock';

interface LockContent {
  readonly pid: number;
  readonly startTime: number | null;
  readonly token: string;
}

/** Lock files this process holds (path → token): a second Machine here is refused too. */
const held = new Map<string, string>();

function code(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

async function readLock(file: string): Promise<LockContent | undefined> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as Partial<LockContent>;
    if (typeof value.pid !== 'number' || typeof value.token !== 'string') return undefined;
    return {
      pid: value.pid,
      startTime: typeof value.startTime === 'number' ? value.startTime : null,
      token: value.token,
    };
  } catch {
    return undefined;
  }
}

/** Whether the process the lock names still runs (same pid, same start time, not a zombie). */
async function holderAlive(file: string, content: LockContent): Promise<boolean> {
  if (content.pid === process.pid) return held.get(file) === content.token;
  const stat = await processStat(content.pid);
  if (stat === undefined || stat.state === 'Z') return false;
  return content.startTime === null || stat.startTime === content.startTime;
}

export interface RunDirLock {
  readonly file: string;
  /** Who held the lock before a forced take-over (a live process), if anyone. */
  readonly tookOverFrom: number | undefined;
  /** Whether this process still holds it (not released, disowned or taken over). */
  owned(): boolean;
  /**
   * Gives it up within this process only (the machine's QEMU went away on its own): another
   * `Machine` here may take the directory over; other processes still see this one as the
   * holder while it lives. Synchronous.
   */
  disown(): void;
  /** Gives it up and removes the file if it is still ours. Never throws. */
  release(): Promise<void>;
}

let ownStartTime: Promise<number | null> | undefined;

/**
 * Takes the run directory's lock. A live holder makes it a `RunDirLockedError` naming that
 * process, unless `force` (then the lock is taken over; the caller ends that holder's QEMU).
 */
export async function acquireRunDirLock(
  runDir: string,
  options: { readonly force?: boolean } = {},
): Promise<RunDirLock> {
  const file = path.join(runDir, LOCK_FILE);
  ownStartTime ??= processStat(process.pid).then((s) => s?.startTime ?? null);
  const token = randomBytes(8).toString('hex');
  const content: LockContent = { pid: process.pid, startTime: await ownStartTime, token };
  let tookOverFrom: number | undefined;
  for (let attempt = 0; ; attempt++) {
    const temp = path.join(runDir, `.${LOCK_FILE}.${token}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(content)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, file);
      held.set(file, token);
      return {
        file,
        tookOverFrom,
        owned: () => held.get(file) === token,
        disown: () => {
          if (held.get(file) === token) held.delete(file);
        },
        release: async () => {
          if (held.get(file) === token) held.delete(file);
          const now = await readLock(file);
          // Already gone (run directory removed) or someone else's by now: nothing to do.
          if (now?.token === token) await unlink(file).catch(() => undefined);
        },
      };
    } catch (error) {
      if (code(error) !== 'EEXIST' || attempt >= 5) throw error;
    } finally {
      // The link (or its failure) is done: the temp name has served its purpose.
      await unlink(temp).catch(() => undefined);
    }
    const holder = await readLock(file);
    const alive = holder !== undefined && (await holderAlive(file, holder));
    if (alive && holder !== undefined && options.force !== true)
      throw new RunDirLockedError({
        runDir,
        lockFile: file,
        holderPid: holder.pid,
        holderStartTime: holder.startTime,
      });
    if (alive && holder !== undefined) {
      tookOverFrom = holder.pid;
      if (holder.pid === process.pid) held.delete(file);
    }
    // Stale (its process is gone), unreadable (never completed: locks are linked whole, so
    // this is a foreign file) or forced: remove it and try again.
    await unlink(file).catch((error: unknown) => {
      if (code(error) !== 'ENOENT') throw error;
    });
  }
}
