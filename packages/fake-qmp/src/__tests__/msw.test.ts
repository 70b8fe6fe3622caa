import { connect } from '@qmpkit/transport';
import { describe, expect, it } from 'vitest';
import { createQmpWebSocketHandler, ensureWebSocketGlobal } from '../msw.js';
import { createFakeQmp } from '../server/fake.js';

describe('msw adapter', () => {
  it('mocks a QMP-over-WebSocket endpoint with the fake', async () => {
    await ensureWebSocketGlobal();
    const fake = await createFakeQmp({ storage: 'memory' });
    const handler = await createQmpWebSocketHandler(fake, 'ws://vm.test/qmp');
    const { setupServer } = await import('msw/node');
    const server = setupServer(handler);
    server.listen({ onUnhandledRequest: 'error' });
    try {
      const WebSocket = (globalThis as unknown as { WebSocket: new (url: string) => object })
        .WebSocket;
      const qmp = await connect('ws://vm.test/qmp', { WebSocket });
      expect(qmp.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
      const stop = qmp.expectEvent('STOP');
      await qmp.execute('stop');
      await stop.wait({ timeout: 2000 });
      expect(fake.model.run.status).toBe('paused');
      expect(fake.received('stop')).toHaveLength(1);
      await qmp.close();
    } finally {
      server.close();
      await fake.close();
    }
  });
});
