/** The fake's migration stream is QEMU-shaped: a real QEMU 7.2 `-machine none` loads it. */
import path from 'node:path';
import {
  privateTempDir,
  qemuSkipReason,
  qemuSuite,
  skipNote,
  spawnQemu,
} from '@qmpkit/testguest/test-support';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { describe, expect, it } from 'vitest';
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
});
