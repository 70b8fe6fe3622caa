/**
 * The fake's migration stream is QEMU-shaped: a real QEMU 7.2 `-machine none` loads it; and
 * the machine types a stream names are QEMU's (`-machine help`, byte for byte).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  privateTempDir,
  QEMU,
  qemuSkipReason,
  qemuSuite,
  skipNote,
  spawnQemu,
} from '@qmpkit/testguest/test-support';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { describe, expect, it } from 'vitest';
import { machineHelp, resolveMachineType } from '../model/machine-types.js';
import { parseQemuCommandLine } from '../process.js';
import { createFakeQmp } from '../server/fake.js';

// Binary lookup (QMPKIT_QEMU still overrides), skip rules (never skip with CI=true) and
// killing every QEMU this file started: the shared test support.
qemuSuite();
const missing = qemuSkipReason();

describe.skipIf(missing !== undefined)(`migration stream${skipNote()}`, () => {
  it('a real QEMU -machine none completes an incoming migration from the fake', async () => {
    const { dir, remove } = privateTempDir('qmpkit-stream-');
    const fds = new InheritedFds(['ignore', 'ignore', 'pipe']);
    const monitor = fds.socketpair();
    const child = spawnQemu(
      [
        '-machine',
        'none',
        '-nodefaults',
        '-display',
        'none',
        '-accel',
        'tcg',
        '-incoming',
        'defer',
        ...monitor.monitorArgs(),
      ],
      { stdio: fds.stdio },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const fake = await createFakeQmp({ machine: 'none', storage: 'memory' });
    try {
      const real = await connect(monitor.address(child));
      await real.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      const sock = path.join(dir, 'in.sock');
      await real.execute('migrate-incoming', { uri: `unix:${sock}` });
      const completed = real.expectEvent(
        'MIGRATION',
        (e) => e.data.status === 'completed' || e.data.status === 'failed',
      );
      const source = await connect(fake.pair());
      await source.execute('migrate', { uri: `unix:${sock}` });
      const event = await completed.wait({ timeout: 10_000 });
      expect({ status: event.data.status, stderr }).toEqual({ status: 'completed', stderr: '' });
      expect((await real.execute('query-status')).status).toBe('running');
      await source.close();
      await real.close();
    } finally {
      await fake.close();
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      remove();
    }
  });

  it("-machine help of the fake (process mode) is the real binary's; pc and q35 resolve to its newest types", () => {
    const { major, minor } = QEMU.version ?? { major: 0, minor: 0 };
    const version = `${major}.${minor}`;
    const real = execFileSync(QEMU.system, [...QEMU.baseArgs, '-machine', 'help'], {
      env: { ...process.env, ...QEMU.env },
      encoding: 'utf8',
    });
    expect(machineHelp(version)).toBe(real);
    expect(resolveMachineType(version, 'q35')).toBe(`pc-q35-${version}`);
    const line = parseQemuCommandLine(['-machine', 'type=pc,accel=tcg', '-m', 'size=48M']);
    expect(line.options).toMatchObject({ machineType: 'pc-i440fx-7.2', ramBytes: 48 * 2 ** 20 });
    expect(parseQemuCommandLine(['-machine', 'help']).machineHelp).toBe(true);
  });
});
