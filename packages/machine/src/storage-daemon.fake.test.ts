/**
 * `launchStorageDaemon` and the chain-job runner against the fake `qemu-storage-daemon`
 * executable (`@qmpkit/fake-qmp`'s storage-daemon process mode; no QEMU): the daemon's command
 * line as qmpkit builds it (`--chardev socket,fd=N` + `--monitor`, JSON `--blockdev`,
 * `--nbd-server`, `--export`, `--pidfile`), an inner commit then a stream on a 3-layer qcow2
 * chain with the model following the new chain, and `quit` ending the process with 0. (The
 * daemon's refusals of its command line — words and exit code — are checked in fake-qmp's
 * storage-daemon.test.ts without a process per case.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockNode, VmConfig } from '@qmpkit/devices';
import { createFakeStorageDaemon } from '@qmpkit/fake-qmp';
import { connect } from '@qmpkit/transport';
import { afterAll, describe, expect, it } from 'vitest';
import { planChainJob, runChainJob, storageDaemonChainHost } from './chain-jobs.js';
import { writeFakeStorageDaemon } from './fake-qemu.test-support.js';
import { launchStorageDaemon, type StorageDaemon } from './storage-daemon.js';

const MIB = 1024 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-qsd-e2e-'));
const fake = writeFakeStorageDaemon(dir);
const started: StorageDaemon[] = [];
afterAll(async () => {
  for (const d of started) if (d.status === 'running') await d.kill();
  rmSync(dir, { recursive: true, force: true });
});

const image = (name: string) => path.join(dir, `${name}.qcow2`);

/** base ← mid ← top as qcow2 files, written by the fake daemon in process (blockdev-create). */
async function makeChain(): Promise<void> {
  await using maker = await createFakeStorageDaemon({ storage: 'host' });
  const qmp = await connect(maker.pair());
  let backing: string | undefined;
  for (const name of ['base', 'mid', 'top']) {
    const filename = image(name);
    for (const [id, options] of [
      ['f', { driver: 'file' as const, filename, size: 0 }],
      [
        'q',
        {
          driver: 'qcow2' as const,
          file: `${name}-file`,
          size: MIB,
          ...(backing === undefined
            ? {}
            : { 'backing-file': image(backing), 'backing-fmt': 'qcow2' as const }),
        },
      ],
    ] as const) {
      if (id === 'q')
        await qmp.execute('blockdev-add', {
          driver: 'file',
          filename,
          'node-name': `${name}-file`,
        });
      const done = qmp.expectEvent(
        'JOB_STATUS_CHANGE',
        (e) => e.data.id === `${name}-${id}` && e.data.status === 'concluded',
      );
      await qmp.execute('blockdev-create', { 'job-id': `${name}-${id}`, options });
      await done.wait();
      await qmp.execute('job-dismiss', { id: `${name}-${id}` });
    }
    backing = name;
  }
  await qmp.close();
}

const blockdevs: BlockNode[] = [
  { driver: 'file', 'node-name': 'base-file', filename: image('base') },
  { driver: 'qcow2', 'node-name': 'base', file: 'base-file' },
  { driver: 'file', 'node-name': 'mid-file', filename: image('mid') },
  { driver: 'qcow2', 'node-name': 'mid', file: 'mid-file', backing: 'base' },
  { driver: 'file', 'node-name': 'top-file', filename: image('top') },
  { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'mid' },
];

describe('launchStorageDaemon and runChainJob against the fake daemon executable', () => {
  it('commits an inner layer, then streams the rest; the chain and the exports follow', async () => {
    await makeChain();
    const daemon = await launchStorageDaemon({
      qemu: fake.path,
      env: fake.env,
      runDirParent: dir,
      blockdevs,
      nbdServer: { addr: { type: 'unix', path: path.join(dir, 'nbd.sock') } },
      exports: [{ type: 'nbd', id: 'export0', 'node-name': 'top' }],
    });
    started.push(daemon);
    expect(daemon.binary.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(daemon.qmp.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await daemon.qmp.execute('query-block-exports')).toEqual([
      { type: 'nbd', id: 'export0', 'node-name': 'top', 'shutting-down': false },
    ]);

    const config: VmConfig = {
      machine: { type: 'pc-i440fx-7.2' },
      memory: { size: 16 * MIB },
      blockdevs,
      devices: [{ driver: 'virtio-blk-pci', id: 'disk0', drive: 'top' }],
    };
    const host = storageDaemonChainHost(daemon, config);
    let jobId: string | undefined;
    const commit = await runChainJob(
      host,
      planChainJob(host.config, { op: 'commit', top: 'mid', base: 'base' }),
      {
        onJob: (job) => {
          jobId = job.id;
        },
      },
    );
    expect(commit).toMatchObject({
      op: 'commit',
      disk: 'disk0',
      before: ['base', 'mid', 'top'],
      after: ['base', 'top'],
      removed: ['mid', 'mid-file'],
    });
    expect(commit.jobId).toBe(jobId);
    // Dismissed: the daemon keeps no job.
    expect(await daemon.qmp.execute('query-jobs')).toEqual([]);

    const streamed = await runChainJob(host, planChainJob(host.config, { op: 'stream' }));
    expect(streamed).toMatchObject({
      before: ['base', 'top'],
      after: ['top'],
      removed: ['base', 'base-file'],
    });
    const nodes = (await daemon.qmp.execute('query-named-block-nodes', { flat: true })).map(
      (n) => n['node-name'],
    );
    expect(nodes.sort()).toEqual(['top', 'top-file']);

    // A command of the system emulator is not the daemon's.
    await expect(daemon.qmp.executeUnchecked('query-status')).rejects.toMatchObject({
      errorClass: 'CommandNotFound',
    });
    const exit = await daemon.quit();
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
