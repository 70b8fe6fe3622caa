/**
 * `qmpkit vm init`, then `vm start` of the file as written (after the `qemu-img create` its
 * comments ask for), `vm pause`/`vm resume`, then `vm stop`: the example runs a real QEMU
 * (issue #12 §4).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli.test-support.js';
import { qemuSuite, SKIP_REASON, skipQemu } from '../qemu.test-support.js';
import type { StatusResult } from './protocol.js';

const run = runCli;

// A private dir; its hooks kill every QEMU and supervisor the test started, also on failure.
const suite = qemuSuite({ prefix: 'qmpkit-init-' });

describe.skipIf(skipQemu)(`qmpkit vm init → vm start (real QEMU)${SKIP_REASON}`, () => {
  const dir = () => path.join(suite.dir, 'vm');
  let started = false;
  afterAll(async () => {
    if (started) await run('vm', 'stop', '--dir', dir());
  });

  it('the example starts once its disk image exists, and vm stop ends it', async () => {
    const config = path.join(suite.dir, 'vm.jsonc');
    expect((await run('vm', 'init', config)).code).toBe(0);
    await promisify(execFile)(suite.binary.img, [
      'create',
      '-q',
      '-f',
      'qcow2',
      path.join(suite.dir, 'disk.qcow2'),
      '64M',
    ]);
    const start = await run('vm', 'start', config, '--dir', dir());
    expect(start.err).toBe('');
    expect(start.code).toBe(0);
    started = true;
    const status = await run('vm', 'status', '--dir', dir(), '--json');
    const parsed = JSON.parse(status.out) as StatusResult;
    suite.trackPid(parsed.pid);
    suite.trackPid(parsed.qemu.pid);
    expect(parsed.qemu.runState).toBe('running');
    // vm pause / vm resume go through the supervisor, which owns QMP; each prints the status after it.
    const paused = await run('vm', 'pause', '--dir', dir(), '--json');
    expect(paused.code).toBe(0);
    expect((JSON.parse(paused.out) as StatusResult).qemu.runState).toBe('paused');
    const resumed = await run('vm', 'resume', '--dir', dir());
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/running/);
    const again = JSON.parse((await run('vm', 'status', '--dir', dir(), '--json')).out);
    expect((again as StatusResult).qemu.runState).toBe('running');
    const stop = await run('vm', 'stop', '--dir', dir());
    expect(stop.code).toBe(0);
    started = false;
    expect(stop.out).toMatch(/^stopped \(QEMU /);
    expect((await run('vm', 'status', '--dir', dir())).code).toBe(2);
  });
});
