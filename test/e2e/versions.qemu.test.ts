/**
 * Version-range typing against a real QEMU 7.2: the capability checks that narrow a client
 * typed for 5.2–7.2 are answered from the live `query-qmp-schema`, QAPI features included.
 */
import { spawn, spawnSync } from 'node:child_process';
import { InheritedFds } from '@qmpkit/transport/fd';
import {
  connect,
  type QmpClientFor,
  supports,
  supportsFeature,
  supportsValue,
} from '@qmpkit/transport/versions';
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
  // sheepdog is in 5.2 of the range but was removed after 6.0: the live 7.2 says no.
  expect(await supportsValue(qmp, 'blockdev-add.driver=sheepdog')).toBeUndefined();
  if (jobs) {
    const list = await jobs.execute('query-jobs');
    expect(Array.isArray(list)).toBe(true);
  }
});

it('narrows by QAPI features of commands, arguments, branches and values', async (ctx) => {
  if (!qmp) return ctx.skip('qemu-system-x86_64 is not installed');
  // device_add carries json-cli from 6.2 and json-cli-hotplug from 7.0: narrowed to 7.2.
  const hotplug = await supportsFeature(qmp, 'device_add', 'json-cli-hotplug');
  expect(hotplug).toBe(qmp);
  expect(await supportsFeature(qmp, 'device_add', 'json-cli')).toBe(qmp);
  // On 5.0+ in both versions of the range: the answer is still asked of the live QEMU.
  expect(await supportsFeature(qmp, 'blockdev-snapshot', 'allow-write-only-overlay')).toBe(qmp);
  expect(await supportsFeature(qmp, 'blockdev-add[file]', 'dynamic-auto-read-only')).toBe(qmp);
  expect(await supportsFeature(qmp, 'block-commit.base', 'deprecated')).toBe(qmp);
  expect(await supportsFeature(qmp, 'blockdev-add.nbd.x-dirty-bitmap', 'unstable')).toBe(qmp);
  expect(await supportsFeature(qmp, 'object-add.qom-type=x-remote-object', 'unstable')).toBe(qmp);
  // Deprecated in 5.0–5.2, gone in 6.0: 7.2 says no.
  expect(await supportsFeature(qmp, 'query-cpus', 'deprecated')).toBeUndefined();
  // x-query-virtio is unstable and 7.2+: the narrowed client may call it.
  const virtio = await supportsFeature(qmp, 'x-query-virtio', 'unstable');
  expect(virtio).toBe(qmp);
  if (virtio) expect(await virtio.execute('x-query-virtio')).toEqual([]);
  // From untyped code, a feature no known version has there is a clear error.
  const untyped = supportsFeature as (q: unknown, s: string, f: string) => Promise<unknown>;
  await expect(untyped(qmp, 'blockdev-snapshot', 'allow-write-only-overlai')).rejects.toMatchObject(
    {
      name: 'QmpUnknownCapabilityError',
      kind: 'feature',
      capability: 'blockdev-snapshot/$allow-write-only-overlai',
    },
  );
});
