import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRunDirLockedError } from './errors.js';
import { acquireRunDirLock, LOCK_FILE } from './lock.js';
import { processStat } from './proc.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-lock-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh 0700 directory, like a run directory. */
function dir(): string {
  const d = path.join(root, String(n++));
  mkdirSync(d, { mode: 0o700 });
  return d;
}

/** A live process that is not this one (ended after the test). */
async function otherProcess(): Promise<{ pid: number; startTime: number; end(): void }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const pid = child.pid ?? 0;
  const startTime = (await processStat(pid))?.startTime ?? 0;
  return { pid, startTime, end: () => child.kill('SIGKILL') };
}

function writeLock(d: string, content: unknown): void {
  writeFileSync(path.join(d, LOCK_FILE), JSON.stringify(content), { mode: 0o600 });
}

describe('run directory lock', () => {
  it('refuses a second holder in this process, and frees on release', async () => {
    const d = dir();
    const lock = await acquireRunDirLock(d);
    expect(lock.owned()).toBe(true);
    const error = await acquireRunDirLock(d).catch((e: unknown) => e);
    expect(isRunDirLockedError(error) && error.holderPid).toBe(process.pid);
    await lock.release();
    expect(lock.owned()).toBe(false);
    const again = await acquireRunDirLock(d);
    await again.release();
  });

  it('names a live holder in another process; force takes over', async () => {
    const d = dir();
    const other = await otherProcess();
    try {
      writeLock(d, { pid: other.pid, startTime: other.startTime, token: 'theirs' });
      const error = await acquireRunDirLock(d).catch((e: unknown) => e);
      expect(isRunDirLockedError(error) && [error.holderPid, error.holderStartTime]).toEqual([
        other.pid,
        other.startTime,
      ]);
      const lock = await acquireRunDirLock(d, { force: true });
      expect(lock.tookOverFrom).toBe(other.pid);
      expect(JSON.parse(readFileSync(path.join(d, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
      await lock.release();
    } finally {
      other.end();
    }
  });

  it('takes over a stale lock: dead holder, reused pid (other start time), unreadable file', async () => {
    const other = await otherProcess();
    try {
      const cases: unknown[] = [
        { pid: 2 ** 22 + 17, startTime: 1, token: 'dead' },
        { pid: other.pid, startTime: other.startTime + 1, token: 'reused' },
      ];
      for (const content of cases) {
        const d = dir();
        writeLock(d, content);
        const lock = await acquireRunDirLock(d);
        expect(lock.tookOverFrom).toBeUndefined();
        await lock.release();
      }
      const d = dir();
      writeFileSync(path.join(d, LOCK_FILE), '{"pid": 12');
      await (await acquireRunDirLock(d)).release();
    } finally {
      other.end();
    }
  });

  it('a disowned lock can be taken over in this process but still names us elsewhere', async () => {
    const d = dir();
    const first = await acquireRunDirLock(d);
    first.disown();
    const second = await acquireRunDirLock(d);
    expect(second.owned()).toBe(true);
    // The first one's release must not remove the second one's lock.
    await first.release();
    expect(JSON.parse(readFileSync(path.join(d, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    expect(second.owned()).toBe(true);
    await second.release();
  });
});
