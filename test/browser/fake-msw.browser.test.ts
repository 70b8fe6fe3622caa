/**
 * A page using the transport against the fake through msw, in Chromium (vitest project
 * `browser`): msw 2 intercepts the page's `WebSocket`, and every connection to the mocked URL
 * is a client of the fake (no server, no QEMU). Both packages resolve to their browser builds.
 */
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { createQmpWebSocketHandler } from '@qmpkit/fake-qmp/msw';
import { connect, isQmpCommandError, type QmpClient } from '@qmpkit/transport';
import { setupWorker } from 'msw/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const URL = 'ws://vm.test/qmp';
let fake: FakeQmp;
let worker: ReturnType<typeof setupWorker>;
let qmp: QmpClient;

beforeAll(async () => {
  fake = await createFakeQmp({ storage: 'memory' });
  worker = setupWorker(await createQmpWebSocketHandler(fake, URL));
  // WebSocket interception happens in the page; no service worker script is needed.
  await worker.start({ quiet: true, onUnhandledRequest: 'bypass' });
  qmp = await connect(URL);
});

afterAll(async () => {
  await qmp?.close();
  worker?.stop();
});

describe('the transport against the fake via msw, in a real browser', () => {
  it('connects and sees the greeting and status of the fake QEMU 7.2', async () => {
    expect(qmp.greeting.version.qemu).toMatchObject({ major: 7, minor: 2 });
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'running', running: true });
    expect(typeof (globalThis as { document?: unknown }).document).toBe('object'); // a page
  });

  it('stop and cont change the run state and deliver STOP and RESUME', async () => {
    const events = qmp.events({ names: ['STOP', 'RESUME'] });
    await qmp.execute('stop');
    expect((await events.next()).value).toMatchObject({ event: 'STOP' });
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'paused', running: false });
    await qmp.execute('cont');
    expect((await events.next()).value).toMatchObject({ event: 'RESUME' });
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'running' });
    await events.return();
  });

  it('an event the fake emits reaches the page; a QMP error is a typed error', async () => {
    const seen = qmp.expectEvent('POWERDOWN');
    fake.emit('POWERDOWN');
    expect((await seen.wait()).event).toBe('POWERDOWN');
    const error = await qmp.execute('blockdev-del', { 'node-name': 'nope' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpCommandError(error)).toBe(true);
    expect(fake.received('blockdev-del')).toHaveLength(1);
  });
});
