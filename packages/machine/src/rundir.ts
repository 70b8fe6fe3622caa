/**
 * The run directory: one private (0700) directory per VM for its state file and whatever
 * else needs a path (stream-sink sockets, logs). QMP and consoles need none: they are
 * socketpairs inherited by QEMU.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RunDirError } from './errors.js';

export interface RunDirOptions {
  /** Use this directory (created with mode 0700 when missing; an existing one must be 0700). */
  readonly runDir?: string | undefined;
  /** Otherwise create a fresh `qmpkit-machine-XXXXXX` directory here (default `os.tmpdir()`). */
  readonly runDirParent?: string | undefined;
}

export interface RunDir {
  readonly path: string;
  /**
   * True for a fresh temporary directory (no `runDir` given): it is removed with the
   * machine. A directory the caller named is never removed.
   */
  readonly temporary: boolean;
}

function code(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

/**
 * Writes and removes a probe file: mode bits alone do not tell (root ignores them, read-only
 * mounts and immutable directories do not show in them).
 */
async function probeWritable(dir: string): Promise<void> {
  const probe = path.join(dir, `.qmpkit-probe-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(
      probe,
      constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY,
      0o600,
    );
    await handle.close();
    await unlink(probe);
  } catch (error) {
    throw new RunDirError(
      dir,
      'not-writable',
      `cannot create files in it (${code(error) ?? error})`,
      {
        cause: error,
      },
    );
  }
}

/** Creates or checks the run directory. */
export async function prepareRunDir(options: RunDirOptions): Promise<RunDir> {
  if (options.runDir === undefined) {
    const parent = path.resolve(options.runDirParent ?? tmpdir());
    let dir: string;
    try {
      // mkdtemp creates the directory with mode 0700.
      dir = await mkdtemp(path.join(parent, 'qmpkit-machine-'));
    } catch (error) {
      const c = code(error);
      const problem =
        c === 'EACCES' || c === 'EPERM' || c === 'EROFS' ? 'not-writable' : 'create-failed';
      throw new RunDirError(
        parent,
        problem,
        `cannot create a run directory in it (${c ?? error})`,
        {
          cause: error,
        },
      );
    }
    await probeWritable(dir);
    return { path: dir, temporary: true };
  }
  const dir = path.resolve(options.runDir);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    const c = code(error);
    if (c !== 'EEXIST') {
      const problem =
        c === 'EACCES' || c === 'EPERM' || c === 'EROFS' ? 'not-writable' : 'create-failed';
      throw new RunDirError(dir, problem, `cannot be created (${c ?? error})`, { cause: error });
    }
  }
  const info = await stat(dir).catch((error: unknown) => {
    throw new RunDirError(dir, 'create-failed', `cannot be inspected (${code(error) ?? error})`, {
      cause: error,
    });
  });
  if (!info.isDirectory()) throw new RunDirError(dir, 'not-a-directory', 'is not a directory');
  await probeWritable(dir);
  if ((info.mode & 0o077) !== 0) {
    throw new RunDirError(
      dir,
      'insecure-mode',
      `is open to other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); it must be 0700`,
    );
  }
  if (typeof process.getuid === 'function' && info.uid !== process.getuid()) {
    throw new RunDirError(dir, 'insecure-mode', `belongs to uid ${info.uid}, not to this process`);
  }
  return { path: dir, temporary: false };
}
