/**
 * Version-range typing against a real QEMU 7.2: the capability checks that narrow a client
 * typed for 5.2–7.2 are answered from the live `query-qmp-schema`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect, type QmpClientFor, supports, supportsValue } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { afterAll, beforeAll, expect, it } from 'vitest';

const hasQemu = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
if (!hasQemu && process.env.CI === 'true') throw new Error('qemu-system-x86_64 is required in CI');

let qmp: QmpClientFor<'5.2' | '7.2'> | undefined;
let pid: number | undefined;

beforeAll(async () => {
  if (!hasQemu) return;
  const fds = new InheritedFds();
  const monitor = fds.socketpair();
  const child = spawn(
    'qemu-system-x86_64',
    ['-machine', 'none', '-nodefaults', '-display', 'none', ...monitor.monitorArgs()],
    {
      stdio: fds.stdio,
    },
  );
  pid = child.pid;
  qmp = await connect<'5.2' | '7.2'>(monitor.address(child));
});

afterAll(async () => {
  await qmp?.execute('quit').catch(() => undefined);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

it('narrows by command, branch member and enum value, from the live schema', async (ctx) => {
  if (!qmp) return ctx.skip('qemu-system-x86_64 is not installed');
  const jobs = await supports(qmp, 'snapshot-save');
  expect(jobs).toBe(qmp); // the same connection, typed for 7.2
  expect(await supports(qmp, 'query-cpus')).toBeUndefined(); // removed in 6.0
  expect(await supports(qmp, 'blockdev-add', 'nbd.open-timeout')).toBe(qmp);
  expect(await supports(qmp, 'blockdev-add', 'node-name')).toBe(qmp);
  expect(await supportsValue(qmp, 'blockdev-add.driver=preallocate')).toBe(qmp);
  // Debian's 7.2 is built without io_uring: the check says so although 7.2 *can* have it.
  expect(await supportsValue(qmp, 'blockdev-add.driver=io_uring')).toBeUndefined();
  if (jobs) {
    const list = await jobs.execute('query-jobs');
    expect(Array.isArray(list)).toBe(true);
  }
});
