// The typed client over a WebSocket, with no Node import: this file runs in Node and in
// Chromium (vitest project `browser`, where `@qmpkit/transport` resolves to its browser build).
import { afterEach, describe, expect, it } from 'vitest';
import { type MemoryQmp, memoryQmp } from '../__tests__/memory-ws.js';
import {
  isQmpCommandError,
  isQmpConnectionError,
  isQmpDisconnectedError,
  isQmpProtocolError,
  isQmpTimeoutError,
} from '../errors.js';
import { connect, type QmpClient } from './client.js';

const inBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
const open: QmpClient[] = [];
afterEach(async () => {
  for (const qmp of open.splice(0)) await qmp.close();
});

async function client(peer: MemoryQmp) {
  const qmp = await connect('ws://vm.test/qmp', { WebSocket: peer.WebSocket });
  open.push(qmp);
  return qmp;
}

describe('the client over a WebSocket (Node and browser)', () => {
  it('negotiates, executes typed commands and keeps one text message per command', async () => {
    const peer = memoryQmp();
    const qmp = await client(peer);
    expect(qmp.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    const status = await qmp.execute('query-status');
    expect(status.status).toBe('running');
    expect(peer.commands.map((c) => c.execute)).toEqual(['qmp_capabilities', 'query-status']);
    // `message` framing: each command is one text message without a trailing newline.
    expect(peer.delivered.every((m) => m.startsWith('{') && m.endsWith('}'))).toBe(true);
  });

  it('delivers events to listeners and iterators, in order', async () => {
    const peer = memoryQmp((cmd, conn) => {
      if (cmd.execute !== 'stop') return undefined;
      conn.event('STOP');
      return { return: {} };
    });
    const qmp = await client(peer);
    const seen: string[] = [];
    qmp.on('STOP', (e) => seen.push(e.event));
    const stream = qmp.events({ names: ['STOP'] });
    await qmp.execute('stop');
    const first = await stream.next();
    expect(first.value).toMatchObject({ event: 'STOP' });
    expect(seen).toEqual(['STOP']);
    await stream.return();
  });

  it('a QMP error reply is a QmpCommandError with the class and description', async () => {
    const peer = memoryQmp((cmd) =>
      cmd.execute === 'cont' ? { error: ['GenericError', 'guest is dead'] } : undefined,
    );
    const qmp = await client(peer);
    const error = await qmp.execute('cont').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpCommandError(error)).toBe(true);
    expect(error).toMatchObject({ errorClass: 'GenericError', desc: 'guest is dead' });
  });

  it('a command with no reply times out with QmpTimeoutError; the connection stays usable', async () => {
    const peer = memoryQmp((cmd) => (cmd.execute === 'stop' ? 'no-reply' : undefined));
    const qmp = await client(peer);
    const error = await qmp.execute('stop', undefined, { timeout: 20 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpTimeoutError(error)).toBe(true);
    expect((await qmp.execute('query-status')).running).toBe(true);
  });

  it('the server closing mid-command rejects it with QmpDisconnectedError', async () => {
    const peer = memoryQmp((cmd, conn) => {
      if (cmd.execute !== 'stop') return undefined;
      conn.close(1011, 'bridge lost QEMU');
      return 'no-reply';
    });
    const qmp = await client(peer);
    const error = await qmp.execute('stop').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpDisconnectedError(error)).toBe(true);
    const reason = await qmp.closed;
    expect(reason.byClient).toBe(false);
    expect(String(reason.error?.message)).toMatch(/1011 bridge lost QEMU/);
  });

  it('a message cut in the middle of a JSON object is a protocol error, not a hang', async () => {
    const peer = memoryQmp((cmd, conn) => {
      if (cmd.execute !== 'stop') return undefined;
      conn.send('{"return": {}, "id"');
      return 'no-reply';
    });
    const qmp = await client(peer);
    const error = await qmp.execute('stop').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpDisconnectedError(error)).toBe(true);
    const reason = await qmp.closed;
    expect(isQmpProtocolError(reason.error)).toBe(true);
  });

  it.runIf(inBrowser)('in a page, a unix: address fails with an actionable error', async () => {
    const error = await connect('unix:/run/vm/qmp.sock').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isQmpConnectionError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_UNSUPPORTED_IN_BROWSER' });
    expect(String((error as Error).message)).toMatch(/WebSocket bridge/);
  });
});
