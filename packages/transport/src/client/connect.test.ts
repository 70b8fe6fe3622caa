import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../__tests__/helpers.js';
import { isQmpConnectionError } from '../errors.js';
import { connect } from './client.js';

const GREETING = `${JSON.stringify({
  QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: '' }, capabilities: [] },
})}\r\n`;

/** A minimal QMP peer: greeting, then `{}` for every command, echoing ids. */
function peer(): net.Server {
  return net.createServer((socket) => {
    socket.write(GREETING);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const command = JSON.parse(buffered.slice(0, nl)) as { id?: unknown };
        buffered = buffered.slice(nl + 1);
        socket.write(`${JSON.stringify({ return: {}, id: command.id })}\r\n`);
      }
    });
  });
}

const servers: net.Server[] = [];
const tmp = tempDir();
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => tmp.remove());

describe('connect({ waitForListener })', () => {
  it('retries a socket that does not exist yet until QEMU listens on it', async () => {
    const socketPath = path.join(tmp.dir, 'late.sock');
    const attempt = connect(`unix:${socketPath}`, {
      waitForListener: true,
      connectTimeout: 10_000,
    });
    // Listen only after the first dial has certainly failed with ENOENT.
    await new Promise((r) => setTimeout(r, 100));
    const server = peer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const qmp = await attempt;
    expect(await qmp.executeUnchecked('query-name')).toEqual({});
    await qmp.close();
  });

  it('without it, a missing socket fails at once with ENOENT', async () => {
    const error = await connect(`unix:${path.join(tmp.dir, 'none.sock')}`).catch((e: unknown) => e);
    expect(isQmpConnectionError(error) && error.code).toBe('ENOENT');
  });

  it('gives up at connectTimeout with ETIMEDOUT when nothing ever listens', async () => {
    const error = await connect(`unix:${path.join(tmp.dir, 'never.sock')}`, {
      waitForListener: true,
      connectTimeout: 150,
    }).catch((e: unknown) => e);
    expect(isQmpConnectionError(error) && error.code).toBe('ETIMEDOUT');
  });
});
