/** Process mode: the fake as a QEMU process on an inherited monitor descriptor. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { describe, expect, it } from 'vitest';
import { parseQemuCommandLine } from '../process.js';

const bin = path.join(import.meta.dirname, '..', 'qemu-bin.ts');

function run(args: string[]) {
  const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
  const monitor = fds.socketpair();
  const child = spawn(
    process.execPath,
    ['--conditions=@qmpkit/source', '--import', 'tsx', bin, ...args, ...monitor.monitorArgs()],
    { stdio: fds.stdio },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, monitor, exit, stderr: () => stderr };
}

describe('process mode', () => {
  it('reads the QEMU command line (JSON -blockdev/-device/-object, -S, -machine, the monitor fd)', () => {
    const line = parseQemuCommandLine([
      '-machine',
      'pc,accel=tcg,memory-backend=ram0',
      '-nodefaults',
      '-m',
      '16',
      '-S',
      '-object',
      '{"qom-type":"memory-backend-ram","id":"ram0","size":16777216}',
      '-blockdev',
      '{"driver":"null-co","node-name":"n0"}',
      '-device',
      '{"driver":"virtio-blk-pci","id":"vd0","drive":"n0"}',
      '-chardev',
      'socket,id=qmp,fd=3',
      '-mon',
      'chardev=qmp,mode=control',
      '--fake-fail=device_add',
      '--fake-no-greeting',
      '--fake-ignore-quit',
    ]);
    expect(line).toMatchObject({
      monitorFd: 3,
      fail: ['device_add'],
      noGreeting: true,
      ignoreQuit: true,
      ignoreTerm: false,
      options: {
        machine: 'pc',
        paused: true,
        memoryBackend: 'ram0',
        blockdev: [{ driver: 'null-co', 'node-name': 'n0' }],
        device: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'n0' }],
      },
    });
  });

  it('serves the simulated VM on the inherited monitor and exits 0 after quit', async () => {
    const p = run(['-machine', 'none', '-S', '-blockdev', '{"driver":"null-co","node-name":"n0"}']);
    const qmp = await connect(p.monitor.address(p.child));
    expect((await qmp.execute('query-status')).status).toBe('prelaunch');
    expect((await qmp.execute('query-named-block-nodes')).map((n) => n['node-name'])).toEqual([
      'n0',
    ]);
    await qmp.execute('quit');
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await qmp.close();
  }, 30_000);

  it('dies by SIGTERM (unlike QEMU, which exits 0): a supervisor sees which signal ended it', async () => {
    const p = run(['-machine', 'none']);
    const qmp = await connect(p.monitor.address(p.child));
    expect((await qmp.execute('query-status')).status).toBe('running');
    p.child.kill('SIGTERM');
    expect(await p.exit).toEqual({ code: null, signal: 'SIGTERM' });
    await qmp.close();
  }, 30_000);

  it('exits early with a message on stderr when told to', async () => {
    const p = run(['--fake-exit=1:qemu-system-x86_64: -device foo: no such device']);
    expect(await p.exit).toEqual({ code: 1, signal: null });
    expect(p.stderr()).toBe('qemu-system-x86_64: -device foo: no such device\n');
  }, 30_000);
});
