import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { diesWithUs, setprivAvailable } from './parent-death.js';
import { processAlive, waitForProcessGone } from './proc.js';

describe('processes that die with their parent', () => {
  it('a command run through diesWithUs is killed when the process that started it is', async () => {
    const warnings: string[] = [];
    const run = await diesWithUs('sleep', ['60'], { warn: (m) => warnings.push(m) });
    if (!(await setprivAvailable())) {
      // Without util-linux's setpriv the command runs as is, and the logger is told.
      expect(run).toEqual({ command: 'sleep', args: ['60'], guarded: false });
      expect(warnings).toHaveLength(1);
      return;
    }
    expect(run).toEqual({
      command: 'setpriv',
      args: ['--pdeathsig', 'SIGKILL', '--', 'sleep', '60'],
      guarded: true,
    });
    // A parent that starts it (argument array, no shell), says its pid and waits.
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `const c = require('node:child_process').spawn(${JSON.stringify(run.command)}, ${JSON.stringify(run.args)}, { stdio: 'ignore' });
         c.once('spawn', () => console.log(c.pid)); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: parent.stdout }).once('line', resolve),
    );
    const pid = Number(line);
    expect(processAlive(pid)).toBe(true);
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    parent.kill('SIGKILL');
    await exited;
    // The kernel sends SIGKILL when the parent dies; waiting is bounded, the outcome is not
    // a matter of timing (without the signal `sleep 60` would still run after 10 s).
    expect(await waitForProcessGone(pid, 10_000)).toBe(true);
  });
});
