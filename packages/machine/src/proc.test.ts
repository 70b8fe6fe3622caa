import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { allThreadsExited, waitForProcessGone } from './proc.js';

describe('allThreadsExited / waitForProcessGone', () => {
  it('is false while any thread of the process runs', async () => {
    // This test process itself has several threads (libuv's pool, V8's helpers).
    expect(await allThreadsExited(process.pid)).toBe(false);
    expect(await waitForProcessGone(process.pid, 50)).toBe(false);
  });

  it('is true once the process has exited, and for a pid that does not exist', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid ?? -1;
    expect(await allThreadsExited(pid)).toBe(false);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(await waitForProcessGone(pid, 5_000)).toBe(true);
    expect(await allThreadsExited(pid)).toBe(true);
    expect(await allThreadsExited(2 ** 22 + 1)).toBe(true);
  });
});
