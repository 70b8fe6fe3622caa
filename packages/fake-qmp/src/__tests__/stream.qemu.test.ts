/** The fake's migration stream is QEMU-shaped: a real QEMU 7.2 `-machine none` loads it. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { describe, expect, it } from 'vitest';
import { createFakeQmp } from '../server/fake.js';

const QEMU = process.env.QMPKIT_QEMU ?? 'qemu-system-x86_64';
const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
const missing = probe.error || probe.status !== 0 ? `${QEMU} not runnable` : undefined;
if (missing && process.env.CI === 'true') throw new Error(missing);

describe.skipIf(missing !== undefined)(
  `migration stream${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('a real QEMU -machine none completes an incoming migration from the fake', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-stream-'));
      const fds = new InheritedFds(['ignore', 'ignore', 'pipe']);
      const monitor = fds.socketpair();
      const child = spawn(
        QEMU,
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
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
