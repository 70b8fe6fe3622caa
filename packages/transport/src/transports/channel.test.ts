import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
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

  describe('without options.WebSocket (the default class)', () => {
    afterEach(() => {
      vi.unstubAllGlobals();
    });

    it('uses the `ws` package when the runtime has no global WebSocket (Node 20)', async () => {
      vi.stubGlobal('WebSocket', undefined);
      const server = await qmpServer();
      try {
        const qmp = await connect(server.url, { connectTimeout: 5000 });
        expect(await qmp.execute('query-status')).toEqual(STATUS);
        expect(server.received).toEqual(['qmp_capabilities', 'query-status']);
        await qmp.close();
      } finally {
        await server.close();
      }
    });

    it('prefers a global WebSocket over the `ws` package', async () => {
      const urls: string[] = [];
      vi.stubGlobal(
        'WebSocket',
        class extends WebSocket {
          constructor(url: string, protocols?: string | string[]) {
            super(url, protocols);
            urls.push(url);
          }
        },
      );
      const server = await qmpServer();
      try {
        const qmp = await connect(server.url, { connectTimeout: 5000 });
        expect(urls).toEqual([server.url]);
        expect(await qmp.execute('query-status')).toEqual(STATUS);
        await qmp.close();
      } finally {
        await server.close();
      }
    });

    // Node 20's own WebSocket (undici, behind --experimental-websocket; on by default from
    // Node 22) in a child process: its events differ from `ws`'s (string data, no error
    // detail), so the channel must not rely on `ws`-only behaviour.
    it("works with the runtime's built-in WebSocket", async () => {
      const server = await qmpServer();
      const major = Number(process.versions.node.split('.')[0]);
      const client = path.join(import.meta.dirname, '../client/client.ts');
      const script = `
        const { connect } = await import(${JSON.stringify(client)});
        if (typeof globalThis.WebSocket !== 'function') throw new Error('no global WebSocket');
        const qmp = await connect(${JSON.stringify(server.url)}, { connectTimeout: 5000 });
        console.log(JSON.stringify(await qmp.execute('query-status')));
        await qmp.close();`;
      try {
        const { stdout } = await promisify(execFile)(process.execPath, [
          ...(major < 22 ? ['--experimental-websocket'] : []),
          '--no-warnings',
          '--conditions=@qmpkit/source',
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          script,
        ]);
        expect(JSON.parse(stdout)).toEqual(STATUS);
        expect(server.received).toEqual(['qmp_capabilities', 'query-status']);
      } finally {
        await server.close();
      }
    });
  });
});

const STATUS = { status: 'running', singlestep: false, running: true };

/** A loopback WebSocket server answering like QEMU: a greeting, `{}`, and query-status. */
async function qmpServer() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const received: string[] = [];
  server.on('connection', (socket) => {
    socket.send(encodeGreeting({ qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, []));
    socket.on('message', (m: Buffer) => {
      const { execute, id } = JSON.parse(String(m)) as { execute: string; id?: number };
      received.push(execute);
      socket.send(encodeReturn(execute === 'query-status' ? STATUS : {}, id));
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/qmp`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.clients) c.terminate();
        server.close(() => resolve());
      }),
  };
}
