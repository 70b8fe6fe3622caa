import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { connect } from '../client/client.js';
import { encodeGreeting, encodeReturn } from '../codec/encoder.js';

describe('WebSocket channel', () => {
  it('keeps a greeting sent in the same tick as the handshake (regression: it was lost)', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    server.on('connection', (socket) => {
      // Greet immediately, as QEMU behind a bridge (or the fake) does.
      socket.send(encodeGreeting({ qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, []));
      socket.on('message', (m: Buffer) => {
        const { id } = JSON.parse(String(m)) as { id?: number };
        socket.send(encodeReturn({}, id));
      });
    });
    const { port } = server.address() as AddressInfo;
    try {
      const qmp = await connect(`ws://127.0.0.1:${port}/`, { WebSocket, connectTimeout: 2000 });
      expect(qmp.greeting.version.qemu.minor).toBe(2);
      await qmp.close();
    } finally {
      for (const c of server.clients) c.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
