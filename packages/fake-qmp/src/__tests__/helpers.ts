/** Test support: raw clients of a fake (exact bytes in, raw lines out). */
import net from 'node:net';
import type { FakeQmp, FakeStream } from '../server/fake.js';

export interface RawClient {
  readonly lines: string[];
  readonly raw: () => string;
  send(text: string): void;
  /** Waits until `n` lines arrived (or the timeout). */
  waitLines(n: number, timeoutMs?: number): Promise<string[]>;
  readonly closed: Promise<void>;
  isClosed(): boolean;
  destroy(): void;
}

export function rawOver(stream: FakeStream): RawClient {
  const lines: string[] = [];
  let buffer = '';
  let all = '';
  let closedFlag = false;
  const waiters: (() => void)[] = [];
  stream.on('data', (d: Uint8Array) => {
    const text = Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('utf8');
    all += text;
    buffer += text;
    const parts = buffer.split('\r\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  stream.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    stream.on('close', () => {
      closedFlag = true;
      for (const w of waiters.splice(0)) w();
      resolve();
    }),
  );
  return {
    lines,
    raw: () => all,
    send: (text) => {
      if (!stream.destroyed) stream.write(text);
    },
    waitLines: async (n, timeoutMs = 2000) => {
      const end = Date.now() + timeoutMs;
      while (lines.length < n && !closedFlag && Date.now() < end) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, end - Date.now()));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return lines.slice(0, n);
    },
    closed,
    isClosed: () => closedFlag,
    destroy: () => stream.destroy(),
  };
}

export function rawClient(fake: FakeQmp): RawClient {
  return rawOver(fake.connectStream());
}

export async function rawSocket(address: string): Promise<RawClient> {
  const socket = address.startsWith('unix:')
    ? net.connect(address.slice(5))
    : (() => {
        const rest = address.slice(4);
        const i = rest.lastIndexOf(':');
        return net.connect({
          host: rest.slice(0, i).replace(/^\[|\]$/g, ''),
          port: Number(rest.slice(i + 1)),
        });
      })();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return rawOver(socket);
}

/** A raw client that has read the greeting and negotiated. */
export async function negotiated(fake: FakeQmp, oob = false): Promise<RawClient> {
  const c = rawClient(fake);
  await c.waitLines(1);
  c.send(
    oob
      ? '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n'
      : '{"execute":"qmp_capabilities"}\n',
  );
  await c.waitLines(2);
  return c;
}
