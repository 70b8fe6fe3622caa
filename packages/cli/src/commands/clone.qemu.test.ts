/**
 * `qmpkit vm clone` against a real QEMU: a VM under a supervisor with its RAM in a shared
 * memory-backend-file, `snapshot save --shared-ram`, then two clones that outlive the command
 * and answer on their own QMP sockets; a VM directory without a store is refused.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MiB, toJSON, type VmConfig } from '@qmpkit/devices';
import { createQcow2Guest } from '@qmpkit/testguest';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { QEMU_BINARY, qemuSuite, SKIP_REASON, skipQemu, startVm } from '../qemu.test-support.js';

const ENV = { PATH: process.env.PATH };

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-vm-clone-' });

describe.skipIf(skipQemu)(`qmpkit vm clone (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  let config: string;

  beforeAll(async () => {
    await createQcow2Guest(path.join(work, 'guest.qcow2'), { intervalMs: 20 });
    const vm: VmConfig = {
      machine: { type: 'pc-i440fx-7.2', 'memory-backend': 'ram0' },
      memory: { size: 16 * MiB },
      objects: [
        {
          'qom-type': 'memory-backend-file',
          id: 'ram0',
          size: 16 * MiB,
          'mem-path': path.join(work, 'vm.ram'),
          share: true,
        },
      ],
      chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
      blockdevs: [
        { driver: 'file', 'node-name': 'disk0-file', filename: 'guest.qcow2' },
        { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
      ],
      devices: [
        { driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 },
        { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
      ],
    };
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
  });

  it('clones a --shared-ram snapshot: each prints its dir and QMP socket and runs on after the command', async () => {
    await startVm(suite, dir, config);

    const save = await run('snapshot', 'save', 'tpl', '--dir', dir, '--shared-ram');
    expect(save.code).toBe(0);
    expect(save.out).toMatch(/^RAM file kept for clones: /m);

    const into = path.join(work, 'farm');
    const clone = await run(
      'vm',
      'clone',
      dir,
      '--count',
      '2',
      '--snapshot',
      'tpl',
      '--into',
      into,
      '--qemu',
      QEMU_BINARY.system,
    );
    expect(clone.err).toBe('');
    expect(clone.code).toBe(0);
    const lines = clone.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^2 clones of 'tpl' in .+ \(RAM: private-map\)$/);
    const clones = lines.slice(1).map((l) => {
      const m = /^(\S+) {2}qmp unix:(\S+) {2}pid (\d+)$/.exec(l);
      expect(m).not.toBeNull();
      suite.trackPid(Number(m?.[3]));
      return { dir: m?.[1] ?? '', socket: m?.[2] ?? '' };
    });
    expect(clones.map((c) => c.dir)).toEqual([path.join(into, 'tpl-1'), path.join(into, 'tpl-2')]);
    // The command is over; each clone answers on its own socket, and quits alone.
    for (const c of clones) {
      const q = await run('exec', `unix:${c.socket}`, 'query-status', '--no-pretty');
      expect(q.code).toBe(0);
      expect(JSON.parse(q.out)).toMatchObject({ status: 'running' });
    }
    expect((await run('exec', `unix:${clones[0]?.socket}`, 'quit')).code).toBe(0);
    const other = await run('exec', `unix:${clones[1]?.socket}`, 'query-status', '--no-pretty');
    expect(JSON.parse(other.out)).toMatchObject({ status: 'running' });
    expect((await run('exec', `unix:${clones[1]?.socket}`, 'quit')).code).toBe(0);
    expect((await run('vm', 'stop', '--dir', dir)).code).toBe(0);
  }, 120_000);

  it('a VM directory without a snapshot store: exit 1, nothing created', async () => {
    const missing = path.join(work, 'no-such-vm');
    const r = await run('vm', 'clone', missing, '--count', '2');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/holds no snapshot store/);
    expect(existsSync(missing)).toBe(false);
  });
});
