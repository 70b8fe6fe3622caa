/**
 * Two fakes migrating inside a page (Chromium, vitest project `browser`): the fake's
 * migration model has no Node in it, and in a page its channels run over an in-memory network
 * of the page's fakes (unix paths and loopback ports name listeners there). Clients reach
 * both fakes as a web app would, through msw's WebSocket interception.
 */
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { createQmpWebSocketHandler } from '@qmpkit/fake-qmp/msw';
import { connect, type QmpClient } from '@qmpkit/transport';
import { setupWorker } from 'msw/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseStream,
  streamHead,
  streamTail,
} from '../../packages/fake-qmp/src/model/migration-stream.js';

const SOURCE_URL = 'ws://source.test/qmp';
const TARGET_URL = 'ws://target.test/qmp';
let source: FakeQmp;
let target: FakeQmp;
let worker: ReturnType<typeof setupWorker>;
let src: QmpClient;
let dst: QmpClient;

beforeAll(async () => {
  source = await createFakeQmp({ machine: 'pc', ramBytes: 8 * 1024 * 1024 });
  target = await createFakeQmp({ machine: 'pc', incoming: 'defer' });
  worker = setupWorker(
    await createQmpWebSocketHandler(source, SOURCE_URL),
    await createQmpWebSocketHandler(target, TARGET_URL),
  );
  await worker.start({ quiet: true, onUnhandledRequest: 'bypass' });
  src = await connect(SOURCE_URL);
  dst = await connect(TARGET_URL);
});

afterAll(async () => {
  await src?.close();
  await dst?.close();
  worker?.stop();
  await source?.close();
  await target?.close();
});

describe('migration between two fakes in a real browser', () => {
  it('is a page, with no Buffer: the stream codec runs on Uint8Array', () => {
    expect(typeof (globalThis as { document?: unknown }).document).toBe('object');
    expect((globalThis as { Buffer?: unknown }).Buffer).toBeUndefined();
    const whole = new Uint8Array([
      ...streamHead('pc-i440fx-7.2', { returnPath: false }),
      ...streamTail('running'),
    ]);
    expect(parseStream(whole)).toEqual({
      runstate: 'running',
      returnPath: false,
      machineType: 'pc-i440fx-7.2',
    });
  });

  it('migrates over tcp:127.0.0.1:0 with pause-before-switchover: events on both sides, the target runs', async () => {
    const caps = [
      { capability: 'events' as const, state: true },
      { capability: 'return-path' as const, state: true },
    ];
    await dst.execute('migrate-set-capabilities', { capabilities: caps });
    await dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const address = (await dst.execute('query-migrate'))['socket-address']?.[0];
    const port = address?.type === 'inet' ? address.port : '';
    expect(Number(port)).toBeGreaterThan(0);
    await src.execute('migrate-set-capabilities', {
      capabilities: [...caps, { capability: 'pause-before-switchover' as const, state: true }],
    });
    const parked = src.expectEvent('MIGRATION', (e) => e.data.status === 'pre-switchover');
    await src.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    await parked.wait({ timeout: 5000 });
    // 8 MiB at QEMU's default 128 MiB/s: within the 300 ms downtime at once (one sync).
    expect(await src.execute('query-migrate')).toMatchObject({
      status: 'pre-switchover',
      ram: { total: 8 * 1024 * 1024, remaining: 8 * 1024 * 1024, 'dirty-sync-count': 2 },
    });
    const resumed = dst.expectEvent('RESUME');
    const completed = src.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
    await src.execute('migrate-continue', { state: 'pre-switchover' });
    await completed.wait({ timeout: 5000 });
    await resumed.wait({ timeout: 5000 });
    expect((await src.execute('query-status')).status).toBe('postmigrate');
    expect(await dst.execute('query-status')).toMatchObject({ status: 'running', running: true });
    expect((await dst.execute('query-migrate')).status).toBe('completed');
  });
});
