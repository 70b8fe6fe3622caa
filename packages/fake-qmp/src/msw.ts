/**
 * `@qmpkit/fake-qmp/msw`: serve a fake QMP server behind a mocked WebSocket endpoint with
 * msw 2's `ws` API, so front-end code that talks QMP over WebSocket (through a bridge) can be
 * tested without a server. Each WebSocket message the client sends holds complete QMP
 * messages; each QMP line the fake writes is one WebSocket message (with QEMU's `\r\n`).
 *
 * In a page (msw's `setupWorker` from `msw/browser`) this works as is: no Node built-ins.
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

const encoder = new TextEncoder();
const NEWLINE = new Uint8Array([0x0a]);

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
      const bytes =
        typeof data === 'string'
          ? encoder.encode(data)
          : data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : ArrayBuffer.isView(data)
              ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
              : encoder.encode(String(data));
      // One WebSocket message holds complete QMP messages: end it like a line.
      connection.data(bytes);
      if (bytes[bytes.length - 1] !== 0x0a) connection.data(NEWLINE);
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
