/**
 * `@qmpkit/fake-qmp/msw`: serve a fake QMP server behind a mocked WebSocket endpoint with
 * msw 2's `ws` API, so front-end code that talks QMP over WebSocket (through a bridge) can be
 * tested without a server. Each WebSocket message the client sends holds complete QMP
 * messages; each QMP line the fake writes is one WebSocket message (with QEMU's `\r\n`).
 *
 * Node 20 has no global `WebSocket`, and msw intercepts the global one: call
 * `ensureWebSocketGlobal()` (or set `globalThis.WebSocket` to `ws`'s class) before importing
 * `msw` or `msw/node` anywhere. `createQmpWebSocketHandler` imports msw lazily for that reason.
 *
 * ```ts
 * await ensureWebSocketGlobal();
 * const fake = await createFakeQmp();
 * const handler = await createQmpWebSocketHandler(fake, 'ws://vm.example/qmp');
 * const { setupServer } = await import('msw/node');
 * const server = setupServer(handler);
 * server.listen();
 * ```
 */
import type { FakeQmp } from './server/fake.js';

/** Sets `globalThis.WebSocket` to the `ws` package's class when the runtime has none (Node 20). */
export async function ensureWebSocketGlobal(): Promise<void> {
  const g = globalThis as { WebSocket?: unknown };
  if (g.WebSocket === undefined) g.WebSocket = (await import('ws')).WebSocket;
}

/** What `ws.link(url).addEventListener('connection', …)` returns: pass it to `setupServer`. */
export type QmpWebSocketHandler = Awaited<ReturnType<typeof buildHandler>>;

async function buildHandler(fake: FakeQmp, url: string | RegExp) {
  await ensureWebSocketGlobal();
  const { ws } = await import('msw');
  const link = ws.link(url);
  return link.addEventListener('connection', ({ client }) => {
    const connection = fake.attach('ws', {
      write: (text) => client.send(text),
      close: () => client.close(),
    });
    client.addEventListener('message', (event) => {
      const data = event.data;
      const buf =
        typeof data === 'string'
          ? Buffer.from(data, 'utf8')
          : data instanceof ArrayBuffer
            ? Buffer.from(data)
            : Buffer.from(String(data), 'utf8');
      connection.data(buf[buf.length - 1] === 0x0a ? buf : Buffer.concat([buf, Buffer.from('\n')]));
    });
    client.addEventListener('close', () => connection.ended());
  });
}

/** An msw WebSocket handler that connects every client of `url` to `fake`. */
export function createQmpWebSocketHandler(
  fake: FakeQmp,
  url: string | RegExp,
): Promise<QmpWebSocketHandler> {
  return buildHandler(fake, url);
}
