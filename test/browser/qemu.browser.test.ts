/**
 * Group (c) of the browser tests: real QEMU from a real Chromium. The Node side
 * (`qemu.global-setup.ts`) runs `qmpkit bridge` in front of a QEMU and `qmpkit serve` in front
 * of a VM. Here, in the page, `@qmpkit/transport`'s browser build talks to QEMU through the
 * bridge (and meets the bridge's refusals as typed errors); the dashboard is driven through the
 * `dashboard` browser command (another origin, so a Playwright tab), with screenshots under
 * `test/output/browser/` (gitignored).
 */
import { connect, isQmpConnectionError, isQmpDisconnectedError } from '@qmpkit/transport';
import { describe, expect, inject, it } from 'vitest';
import { commands } from 'vitest/browser';

const bridge = inject('qemuBridge');
const dashboard = inject('qemuDashboard');
// Set only outside CI (with CI=true the global setup fails instead).
const skipReason = 'skip' in bridge ? bridge.skip : undefined;

function withToken(url: string, token: string | null): string {
  const u = new URL(url);
  if (token === null) u.searchParams.delete('token');
  else u.searchParams.set('token', token);
  return u.href;
}

/** What a failed connect or call rejected with. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe.skipIf(skipReason !== undefined)(
  `a page against real QEMU through qmpkit bridge${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    const url = 'url' in bridge ? bridge.url : '';

    it('runs commands and receives events (stop/cont) through the bridge', async () => {
      expect(typeof (globalThis as { document?: unknown }).document).toBe('object'); // a page
      const qmp = await connect(url);
      try {
        expect(qmp.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
        expect(await qmp.execute('query-status')).toMatchObject({ running: false });
        const resumed = qmp.expectEvent('RESUME');
        await qmp.execute('cont');
        expect((await resumed.wait()).event).toBe('RESUME');
        const stopped = qmp.expectEvent('STOP');
        await qmp.execute('stop');
        expect((await stopped.wait()).event).toBe('STOP');
      } finally {
        await qmp.close();
      }
    });

    it('a wrong token and a second client get clear errors in the page; QEMU serves on', async () => {
      const wrong = await failure(connect(withToken(url, 'wrong')));
      expect(isQmpConnectionError(wrong) || isQmpDisconnectedError(wrong)).toBe(true);
      expect(String((wrong as Error).message) + String((wrong as Error).cause ?? '')).toMatch(
        /4401 wrong token/,
      );

      const first = await connect(url);
      try {
        const second = await failure(connect(url));
        expect(String((second as Error).message) + String((second as Error).cause ?? '')).toMatch(
          /4409 monitor busy/,
        );
        expect(await first.execute('query-status')).toMatchObject({ running: false });
      } finally {
        await first.close();
      }
    });

    it('a binary frame and a half command from the page are closed with their codes and reasons; the bridge and QEMU serve on', async () => {
      /** A page's own WebSocket: the first message (QEMU's greeting) and how it closed. */
      const page = (address: string) => {
        const ws = new WebSocket(address);
        const first = new Promise<string>((resolve) =>
          ws.addEventListener('message', (e) => resolve(String(e.data)), { once: true }),
        );
        const closed = new Promise<{ code: number; reason: string }>((resolve) =>
          ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason })),
        );
        return { ws, first, closed };
      };
      const binary = page(url);
      expect(JSON.parse(await binary.first)).toHaveProperty('QMP');
      binary.ws.send(new TextEncoder().encode('{"execute":"qmp_capabilities"}'));
      expect(await binary.closed).toEqual({
        code: 1003,
        reason: 'binary frames are not supported: send JSON as text frames',
      });

      const half = page(url);
      await half.first;
      half.ws.send('{"execute": "qmp_capa');
      expect(await half.closed).toEqual({
        code: 1007,
        reason: 'a text frame must hold one complete JSON value (one QMP command)',
      });

      const qmp = await connect(url);
      try {
        expect(await qmp.execute('query-status')).toMatchObject({ running: false });
      } finally {
        await qmp.close();
      }
    });
  },
);

describe.skipIf(skipReason !== undefined)('the dashboard of qmpkit serve against a real VM', () => {
  it('shows the run state and block graph; a snapshot saved from the button appears in the tree; events appear in the log', async () => {
    const report = await commands.dashboard(
      'url' in dashboard ? dashboard.url : '',
      inject('screenshotDir'),
    );
    expect(report.runState).toBe('running');
    expect(report.graph).toContainEqual(
      expect.stringMatching(/^disk0 \[block-driver\] \| file \| disk0-file \[block-driver\]$/),
    );
    expect(report.saved).toMatch(/^saved from-page in \d+ ms$/);
    expect(report.loaded).toMatch(/^loaded from-page in \d+ ms$/);
    expect(report.snapshots).toEqual(['from-page', 'from-page/second']);
    expect(report.events).toEqual(expect.arrayContaining(['STOP', 'RESUME']));
    expect(report.wrongTokenAlert).toMatch(/\(4401: wrong token\)/);
    expect(report.consoleErrors).toEqual([]);
    expect(report.screenshots).toHaveLength(4);
  });
});
