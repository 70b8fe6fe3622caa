/**
 * The block-job runner against `@qmpkit/fake-qmp` (no QEMU): mirror with pivot, mirror
 * cancelled once ready (no pivot), active and inner commit, stream, a backup held by its rate
 * limit with its bitmap busy, and a job that fails. The fake's jobs follow QEMU's status
 * sequences (contract scenarios check them against QEMU 7.2 and 10.0), so the outcomes here are
 * exact: every status, the progress, the graph afterwards.
 */
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { connect } from '@qmpkit/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BlockJobHost, backup, commit, mirror, stream } from './block-jobs.js';
import { isBlockJobError } from './errors.js';
import type { MachineQmp } from './process.js';

const MIB = 1024 * 1024;
let fake: FakeQmp;
let qmp: MachineQmp;
let host: BlockJobHost;

beforeEach(async () => {
  fake = await createFakeQmp({ storage: 'memory', machine: 'pc' });
  qmp = await connect(fake.pair());
  host = { qmp };
});

afterEach(async () => {
  await qmp.close();
  await fake.close();
});

async function nullDisk(name: string, device?: string): Promise<void> {
  await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': name, size: MIB });
  if (device !== undefined)
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', drive: name, id: device });
}

/** The node a device uses now (`query-block`). */
async function nodeOf(device: string): Promise<string | undefined> {
  const block = await qmp.execute('query-block');
  return block.find((b) => b.qdev === `/machine/peripheral/${device}/virtio-backend`)?.inserted?.[
    'node-name'
  ];
}

/** A qcow2 image in the fake's memory, created with blockdev-create, opened as `name`. */
async function qcow2(name: string, backing?: string): Promise<void> {
  const filename = `/images/${name}.qcow2`;
  for (const [id, options] of [
    ['f', { driver: 'file' as const, filename, size: 0 }],
    [
      'q',
      {
        driver: 'qcow2' as const,
        file: `${name}-file`,
        size: MIB,
        ...(backing !== undefined
          ? { 'backing-file': `/images/${backing}.qcow2`, 'backing-fmt': 'qcow2' as const }
          : {}),
      },
    ],
  ] as const) {
    if (id === 'q')
      await qmp.execute('blockdev-add', { driver: 'file', filename, 'node-name': `${name}-file` });
    const done = qmp.expectEvent(
      'JOB_STATUS_CHANGE',
      (e) => e.data.id === `${name}-${id}` && e.data.status === 'concluded',
    );
    await qmp.execute('blockdev-create', { 'job-id': `${name}-${id}`, options });
    await done.wait();
    await qmp.execute('job-dismiss', { id: `${name}-${id}` });
  }
  await qmp.execute('blockdev-add', {
    driver: 'qcow2',
    file: `${name}-file`,
    'node-name': name,
    ...(backing !== undefined ? { backing } : {}),
  });
}

describe('the block-job runner against the fake', () => {
  it('mirror: ready, complete pivots the device onto the target, outcome with every status', async () => {
    await nullDisk('disk', 'vda');
    await nullDisk('copy');
    const job = await mirror(host, { jobId: 'm1', node: 'disk', target: 'copy' });
    await job.ready();
    await job.complete();
    const outcome = await job.wait();
    expect(outcome).toMatchObject({
      jobId: 'm1',
      type: 'mirror',
      outcome: 'completed',
      statuses: ['created', 'running', 'ready', 'waiting', 'pending', 'concluded'],
      offset: MIB,
      len: MIB,
    });
    expect(await nodeOf('vda')).toBe('copy');
    expect(await qmp.execute('query-jobs')).toEqual([]);
  });

  it('mirror cancelled once ready: completes without pivot; progress reports ready', async () => {
    await nullDisk('disk', 'vda');
    await nullDisk('copy');
    const job = await mirror(host, { jobId: 'm2', node: 'disk', target: 'copy' });
    await job.ready();
    const updates = job.progress({ intervalMs: 60_000 });
    const seen = [];
    for await (const u of updates) {
      seen.push(u);
      if (u.kind === 'progress') break;
    }
    expect(seen.at(-1)).toEqual({
      kind: 'progress',
      status: 'ready',
      offset: MIB,
      len: MIB,
      speed: 0,
      ready: true,
      paused: false,
    });
    await job.cancel();
    const outcome = await job.wait();
    expect(outcome.outcome).toBe('cancelled');
    expect(outcome.statuses.slice(-3)).toEqual(['waiting', 'pending', 'concluded']);
    expect(await nodeOf('vda')).toBe('disk');
  });

  it('active commit: the base takes the top place; inner commit and stream shorten the chain', async () => {
    await qcow2('base');
    await qcow2('mid', 'base');
    await qcow2('top', 'mid');
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', drive: 'top', id: 'vda' });
    const inner = await commit(host, { jobId: 'c1', device: 'top', top: 'mid', base: 'base' });
    expect(await inner.wait()).toMatchObject({
      outcome: 'completed',
      statuses: ['created', 'running', 'waiting', 'pending', 'concluded'],
      offset: MIB,
      len: MIB,
    });
    const chainOf = async (node: string) => {
      const nodes = await qmp.execute('query-named-block-nodes');
      return nodes.find((n) => n['node-name'] === node)?.backing_file;
    };
    expect(await chainOf('top')).toBe('/images/base.qcow2');
    const pull = await stream(host, { jobId: 's1', node: 'top' });
    expect((await pull.wait()).statuses.at(-1)).toBe('concluded');
    expect(await chainOf('top')).toBeUndefined();

    await qmp.execute('device_del', { id: 'vda' });
    await qcow2('top2', 'base');
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', drive: 'top2', id: 'vdb' });
    const active = await commit(host, { jobId: 'c2', device: 'top2' });
    await active.ready();
    await active.complete();
    const outcome = await active.wait();
    expect(outcome.statuses).toEqual([
      'created',
      'running',
      'ready',
      'waiting',
      'pending',
      'concluded',
    ]);
    expect(await nodeOf('vdb')).toBe('base');
  });

  it('backup held by its rate limit keeps its bitmap busy; set-speed 0 lets it finish', async () => {
    await nullDisk('disk');
    await nullDisk('bk');
    await qmp.execute('block-dirty-bitmap-add', { node: 'disk', name: 'c0' });
    const job = await backup(host, {
      jobId: 'b1',
      node: 'disk',
      target: 'bk',
      sync: 'full',
      bitmap: 'c0',
      bitmapMode: 'on-success',
      speed: 1,
    });
    const busy = async () => {
      const nodes = await qmp.execute('query-named-block-nodes');
      return nodes.find((n) => n['node-name'] === 'disk')?.['dirty-bitmaps']?.[0]?.busy;
    };
    expect(job.status).toBe('running');
    expect(await busy()).toBe(true);
    const error = await qmp.execute('block-dirty-bitmap-remove', { node: 'disk', name: 'c0' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      desc: "Bitmap 'c0' is currently in use by another operation and cannot be used",
    });
    await job.setSpeed(0);
    const outcome = await job.wait();
    expect(outcome).toMatchObject({ outcome: 'completed', offset: MIB, len: MIB });
    expect(outcome.statuses).toEqual([
      'created',
      'running',
      'paused',
      'running',
      'waiting',
      'pending',
      'concluded',
    ]);
    expect(await busy()).toBe(false);
  });

  it('a failing job rejects wait() with QEMU message, read before the job is dismissed', async () => {
    await nullDisk('disk');
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'small', size: 4096 });
    const job = await mirror(host, { jobId: 'm3', node: 'disk', target: 'small' });
    const error = await job.wait().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBlockJobError(error) && error.phase).toBe('run');
    expect(error).toMatchObject({ desc: 'Source and target image have different sizes' });
    expect(await qmp.execute('query-jobs')).toEqual([]);
  });
});
