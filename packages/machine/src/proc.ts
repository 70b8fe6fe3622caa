/** Process helpers: finding the QEMU binary, identifying a process, waiting for it to go. */
import { constants, readFileSync } from 'node:fs';
import { access, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Resolves a binary name on `PATH` (a name with a slash is taken as a path). */
export async function resolveBinary(
  binary: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const candidates = binary.includes('/')
    ? [path.resolve(binary)]
    : (env.PATH ?? '')
        .split(path.delimiter)
        .filter((dir) => dir !== '')
        .map((dir) => path.join(dir, binary));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Fields of `/proc/<pid>/stat` (Linux): state letter, parent pid, start time in clock ticks. */
export interface ProcStat {
  readonly state: string;
  readonly ppid: number;
  readonly startTime: number;
}

/** `/proc/<pid>/stat` of a process, or `undefined` when it is gone or there is no `/proc`. */
export async function processStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    const startTime = Number(fields[19]);
    if (!Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTime)) return undefined;
    return { state: fields[0] ?? '', ppid, startTime };
  } catch {
    return undefined;
  }
}

/**
 * A process's start time (`/proc/<pid>/stat` field 22, clock ticks after boot), or
 * `undefined`. Together with the pid it identifies a process: a reused pid has another
 * start time.
 */
export async function processStartTime(pid: number): Promise<number | undefined> {
  return (await processStat(pid))?.startTime;
}

/** True while a process with this pid exists (zombies included). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** True while a process with this pid runs (a zombie, which only waits to be reaped, is not). */
export function processAlive(pid: number): boolean {
  if (!processExists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Waits until `pid` is gone (or a zombie that is not ours to reap), up to `timeout` ms. */
/**
 * Whether every thread of `pid` has exited (a zombie waiting to be reaped counts as gone).
 * The main thread alone is not enough: it can be a zombie while another thread (QEMU's
 * migration or I/O thread in uninterruptible sleep) still runs and holds the process's files,
 * and with them the image locks a relaunched QEMU needs.
 */
export async function allThreadsExited(pid: number): Promise<boolean> {
  let tasks: string[];
  try {
    tasks = await readdir(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  for (const tid of tasks) {
    try {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      if (!stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    } catch {
      // this thread is gone
    }
  }
  return true;
}

export async function waitForProcessGone(pid: number, timeout: number): Promise<boolean> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (!processExists(pid)) return true;
    if (await allThreadsExited(pid)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
