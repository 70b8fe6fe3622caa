/**
 * fd hand-over without SCM_RIGHTS, against a real QEMU 7.2:
 * save with `migrate uri=unix:` into a private stream sink, restore with
 * `-incoming defer` + `migrate-incoming uri=fd:N` from a file fd inherited at spawn.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InheritedFds } from '../fd/inherited.js';
import { createStreamSink } from '../fd/stream.js';
import { killAllStarted, SKIP_REASON, skipQemu, spawnQemu, tempDir } from './helpers.js';

afterAll(killAllStarted);

const VM = ['-machine', 'pc', '-m', '32', '-accel', 'kvm', '-accel', 'tcg', '-S'];

describe.skipIf(skipQemu)(`fd helpers with QEMU 7.2${SKIP_REASON}`, () => {
  const tmp = tempDir();
  afterAll(() => tmp.remove());

  it('saves to a private stream sink and restores from an inherited file fd', async () => {
    const state = path.join(tmp.dir, 'state.bin');

    // Save: QEMU connects to our 0700-dir socket; we stream to the file with fsync + sha256.
    const source = await spawnQemu({ extraArgs: VM });
    try {
      const qmp = source.qmp;
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
      const sink = await createStreamSink({ file: state, acceptTimeout: 10_000, timeout: 60_000 });
      expect(statSync(path.dirname(sink.path)).mode & 0o777).toBe(0o700);
      const completed = qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
      await qmp.execute('migrate', { uri: sink.uri });
      await completed.wait({ timeout: 30_000 });
      const saved = await sink.done;
      expect(saved.bytes).toBeGreaterThan(100_000);
      const onDisk = readFileSync(state);
      expect(onDisk.length).toBe(saved.bytes);
      expect(createHash('sha256').update(onDisk).digest('hex')).toBe(saved.sha256);
      expect(onDisk.subarray(0, 4).toString('latin1')).toBe('QEVM');
      expect(await qmp.execute('query-migrate')).toMatchObject({ status: 'completed' });
    } finally {
      await source.kill();
    }

    // Restore: the state file is inherited as an fd; QEMU reads it with uri=fd:N.
    const fds = new InheritedFds();
    const file = fds.openFile(state, 'r');
    const target = await spawnQemu({
      fds,
      extraArgs: [...VM, '-incoming', 'defer'],
    });
    try {
      const qmp = target.qmp;
      expect(await qmp.execute('query-status')).toMatchObject({ status: 'inmigrate' });
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      const completed = qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
      await qmp.execute('migrate-incoming', { uri: file.uri });
      await completed.wait({ timeout: 30_000 });
      expect(await qmp.execute('query-migrate')).toMatchObject({ status: 'completed' });
      expect((await qmp.execute('query-status')).status).toMatch(/paused|prelaunch/);
    } finally {
      await target.kill();
    }
  });

  it('passes a file with -add-fd into an fd set', async () => {
    const fds = new InheritedFds();
    const file = fds.openFile(path.join(tmp.dir, 'fdset.img'), 'w+');
    const vm = await spawnQemu({ fds, extraArgs: file.addFdArgs(7, 'scratch,disk') });
    try {
      const sets = await vm.qmp.execute('query-fdsets');
      expect(sets).toMatchObject([{ 'fdset-id': 7, fds: [{ opaque: 'scratch,disk' }] }]);
    } finally {
      await vm.kill();
    }
  });
});
