/**
 * Block jobs, bitmaps and exports of the fake where the contract scenarios cannot pin QEMU's
 * timing (pause points, rate-limit delays): the fake's behaviour is deterministic, so these
 * are exact. QEMU's own sequences are in test/contract/scenarios-block-jobs.ts.
 */
import { connect, isQmpCommandError, type QmpClient } from '@qmpkit/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';

const MIB = 1024 * 1024;
let fake: FakeQmp;
let qmp: QmpClient;
let statuses: string[];

beforeEach(async () => {
  fake = await createFakeQmp({ storage: 'memory', machine: 'none' });
  qmp = await connect(fake.pair());
  statuses = [];
  qmp.on('JOB_STATUS_CHANGE', (e) => {
    statuses.push(`${e.data.id}:${e.data.status}`);
  });
  for (const name of ['src', 'tgt', 'bk'])
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': name, size: MIB });
});

afterEach(async () => {
  await qmp.close();
  await fake.close();
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (isQmpCommandError(e) ? e.desc : e),
  );

/**
 * Lets the fake's zero-delay timers (work QEMU does after its reply) run: they were set while
 * the command was handled, before this later timer, so Node runs them first (no wall time).
 */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

describe('fake block jobs', () => {
  it('pause and resume: paused shows at once, standby/ready after the reply; resume without pause is refused', async () => {
    const ready = qmp.expectEvent('BLOCK_JOB_READY');
    await qmp.execute('blockdev-mirror', {
      'job-id': 'm',
      device: 'src',
      target: 'tgt',
      sync: 'full',
    });
    await ready.wait();
    await qmp.execute('job-pause', { id: 'm' });
    expect((await qmp.execute('query-block-jobs'))[0]).toMatchObject({
      paused: true,
      status: 'ready',
    });
    await settle();
    expect((await qmp.execute('query-block-jobs'))[0]).toMatchObject({ status: 'standby' });
    await qmp.execute('job-resume', { id: 'm' });
    await settle();
    expect(await failure(qmp.execute('job-resume', { id: 'm' }))).toBe(
      "Can't resume a job that was not paused",
    );
    expect(statuses).toEqual(['m:created', 'm:running', 'm:ready', 'm:standby', 'm:ready']);
  });

  it('a rate-limited mirror stays running until set-speed 0, then is ready', async () => {
    await qmp.execute('blockdev-mirror', {
      'job-id': 'm',
      device: 'src',
      target: 'tgt',
      sync: 'full',
      speed: 1,
    });
    await settle();
    expect((await qmp.execute('query-block-jobs'))[0]).toMatchObject({
      status: 'running',
      offset: MIB,
      len: MIB,
      speed: 1,
    });
    const ready = qmp.expectEvent('BLOCK_JOB_READY');
    await qmp.execute('block-job-set-speed', { device: 'm', speed: 0 });
    expect((await ready.wait()).data).toMatchObject({ speed: 0, offset: MIB });
  });

  it('a transaction that fails starts no backup and adds no bitmap', async () => {
    const error = await failure(
      qmp.execute('transaction', {
        actions: [
          { type: 'block-dirty-bitmap-add', data: { node: 'src', name: 'c1' } },
          {
            type: 'blockdev-backup',
            data: { 'job-id': 'b', device: 'src', target: 'bk', sync: 'full' },
          },
          { type: 'block-dirty-bitmap-add', data: { node: 'src', name: 'c1' } },
        ],
      }),
    );
    expect(error).toBe('Bitmap already exists: c1');
    expect(await qmp.execute('query-jobs')).toEqual([]);
    const nodes = await qmp.execute('query-named-block-nodes');
    expect(nodes.find((n) => n['node-name'] === 'src')?.['dirty-bitmaps']).toBeUndefined();
    expect(statuses).toEqual([]);
  });

  it('a sync=none backup runs until cancelled and holds its target; the bitmap follows its mode', async () => {
    await qmp.execute('block-dirty-bitmap-add', { node: 'src', name: 'c' });
    fake.model.block.find('src')!.bitmaps[0]!.count = 3; // as if the guest had written
    await qmp.execute('blockdev-backup', {
      'job-id': 'f',
      device: 'src',
      target: 'bk',
      sync: 'none',
      bitmap: 'c',
      'bitmap-mode': 'always',
    });
    expect(await failure(qmp.execute('blockdev-del', { 'node-name': 'bk' }))).toBe(
      'Node bk is in use',
    );
    expect(
      await failure(
        qmp.execute('blockdev-backup', {
          'job-id': 'g',
          device: 'tgt',
          target: 'bk',
          sync: 'full',
        }),
      ),
    ).toBe("Node 'bk' is busy: block device is in use by block job: backup");
    await qmp.execute('job-cancel', { id: 'f' });
    expect(statuses.slice(-3)).toEqual(['f:aborting', 'f:concluded', 'f:null']);
    const nodes = await qmp.execute('query-named-block-nodes');
    expect(nodes.find((n) => n['node-name'] === 'src')?.['dirty-bitmaps']).toEqual([
      { name: 'c', count: 0, granularity: 65536, recording: true, busy: false, persistent: false },
    ]);
    await qmp.execute('blockdev-del', { 'node-name': 'bk' });
  });

  it('nbd exports are held nodes: blockdev-del refused until block-export-del', async () => {
    await qmp.execute('nbd-server-start', {
      addr: { type: 'inet', data: { host: '127.0.0.1', port: '0' } },
    });
    await qmp.execute('block-export-add', { type: 'nbd', id: 'e', 'node-name': 'src' });
    expect(await qmp.execute('query-block-exports')).toEqual([
      { type: 'nbd', id: 'e', 'node-name': 'src', 'shutting-down': false },
    ]);
    expect(await failure(qmp.execute('blockdev-del', { 'node-name': 'src' }))).toBe(
      'Node src is in use',
    );
    const deleted = qmp.expectEvent('BLOCK_EXPORT_DELETED');
    await qmp.execute('block-export-del', { id: 'e' });
    expect((await deleted.wait()).data).toEqual({ id: 'e' });
    await qmp.execute('blockdev-del', { 'node-name': 'src' });
  });
});
