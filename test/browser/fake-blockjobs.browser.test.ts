/**
 * The fake's storage and block jobs in a page (vitest project `browser`, Chromium): images live
 * in the fake's in-memory storage (no Node, no `Buffer`), a page's client creates a qcow2 image
 * with `blockdev-create`, opens it, mirrors a node onto it and pivots with `job-complete`, all
 * through msw's WebSocket interception.
 */
import { createFakeQmp, type FakeQmp, MemoryStorage } from '@qmpkit/fake-qmp';
import { createQmpWebSocketHandler } from '@qmpkit/fake-qmp/msw';
import type { BlockdevCreateOptions } from '@qmpkit/qapi';
import { connect, type QmpClient } from '@qmpkit/transport';
import { setupWorker } from 'msw/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const URL = 'ws://vm.test/qmp-blockjobs';
const MIB = 1024 * 1024;
const storage = new MemoryStorage();
let fake: FakeQmp;
let worker: ReturnType<typeof setupWorker>;
let qmp: QmpClient;

beforeAll(async () => {
  fake = await createFakeQmp({ storage, machine: 'pc' });
  worker = setupWorker(await createQmpWebSocketHandler(fake, URL));
  await worker.start({ quiet: true, onUnhandledRequest: 'bypass' });
  qmp = await connect(URL);
});

afterAll(async () => {
  await qmp?.close();
  worker?.stop();
});

/** Runs a blockdev-create job to its end and dismisses it. */
async function create(jobId: string, options: BlockdevCreateOptions): Promise<void> {
  const concluded = qmp.expectEvent(
    'JOB_STATUS_CHANGE',
    (e) => e.data.id === jobId && e.data.status === 'concluded',
  );
  await qmp.execute('blockdev-create', { 'job-id': jobId, options });
  await concluded.wait();
  const [job] = await qmp.execute('query-jobs');
  expect(job).toMatchObject({ id: jobId, status: 'concluded' });
  expect(job?.error).toBeUndefined();
  await qmp.execute('job-dismiss', { id: jobId });
}

describe('block jobs of the fake in a page, over msw', () => {
  it('blockdev-create writes a qcow2 image into the in-memory storage', async () => {
    expect(typeof (globalThis as { Buffer?: unknown }).Buffer).toBe('undefined'); // no Node here
    await create('c-file', { driver: 'file', filename: '/vm/copy.qcow2', size: 0 });
    await qmp.execute('blockdev-add', {
      driver: 'file',
      filename: '/vm/copy.qcow2',
      'node-name': 'copy-file',
    });
    await create('c-qcow2', { driver: 'qcow2', file: 'copy-file', size: MIB });
    // The qcow2 magic, written by the page's fake into its storage.
    expect([...storage.read('/vm/copy.qcow2', 0, 4)]).toEqual([0x51, 0x46, 0x49, 0xfb]);
    await qmp.execute('blockdev-add', { driver: 'qcow2', file: 'copy-file', 'node-name': 'copy' });
    const nodes = await qmp.execute('query-named-block-nodes');
    expect(nodes.find((n) => n['node-name'] === 'copy')).toMatchObject({
      drv: 'qcow2',
      image: { 'virtual-size': MIB, format: 'qcow2' },
    });
  });

  it('a mirror onto the new image gets ready and job-complete pivots the disk to it', async () => {
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'disk', size: MIB });
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', drive: 'disk', id: 'vda' });
    const ready = qmp.expectEvent('BLOCK_JOB_READY');
    await qmp.execute('blockdev-mirror', {
      'job-id': 'm',
      device: 'disk',
      target: 'copy',
      sync: 'full',
      'auto-dismiss': false,
    });
    expect((await ready.wait()).data).toEqual({
      device: 'm',
      len: MIB,
      offset: MIB,
      speed: 0,
      type: 'mirror',
    });
    const [info] = await qmp.execute('query-block-jobs');
    expect(info).toMatchObject({ device: 'm', ready: true, status: 'ready' });
    const completed = qmp.expectEvent('BLOCK_JOB_COMPLETED');
    await qmp.execute('job-complete', { id: 'm' });
    expect((await completed.wait()).data).toMatchObject({ device: 'm', type: 'mirror' });
    await qmp.execute('job-dismiss', { id: 'm' });
    const block = await qmp.execute('query-block');
    expect(block.find((b) => b.qdev === '/machine/peripheral/vda/virtio-backend')).toMatchObject({
      inserted: { 'node-name': 'copy', drv: 'qcow2' },
    });
  });
});
