/**
 * The guest agent session against a scripted peer on a UNIX socket, for what a real qemu-ga
 * cannot be made to send: stale bytes and stale sync replies, a sync reply with the wrong id,
 * a non-UTF-8 line, a channel closed mid-reply, a reply that comes after its timeout. After
 * each, the session must still work (it resynchronises). The real agent is in
 * `packages/guest-agent` (`*.qemu.test.ts`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentDecoder } from '../codec/agent.js';
import { AgentSession } from './agent.js';

interface Request {
  readonly execute: string;
  readonly arguments?: { id?: number } & Record<string, unknown>;
  readonly id?: number;
}
type Script = (request: Request, socket: net.Socket) => void;

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-agent-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Like qemu-ga: answers sync with 0xFF + the id, ping with `{}`, echoes ids. */
const agentLike: Script = (request, socket) => {
  if (request.execute === 'guest-sync-delimited')
    socket.write(
      Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${request.arguments?.id}}\n`)]),
    );
  else socket.write(`${JSON.stringify({ return: {}, id: request.id })}\n`);
};

let server: net.Server;
let script: Script;
let onConnect: (socket: net.Socket) => void;
let received: Request[];
let socketPath: string;
let counter = 0;
const quiet = { warn: () => {} };

beforeEach(async () => {
  script = agentLike;
  onConnect = () => {};
  received = [];
  socketPath = path.join(dir, `agent-${counter++}.sock`);
  server = net.createServer((socket) => {
    onConnect(socket);
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      // The agent's parser resets on 0xFF; requests are one JSON object per line.
      text += chunk.toString('latin1').replaceAll('\xff', '');
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n')) {
        const request = JSON.parse(text.slice(0, nl)) as Request;
        text = text.slice(nl + 1);
        received.push(request);
        script(request, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});
afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const open = () => AgentSession.connect(socketPath, { logger: quiet });

describe('AgentSession', () => {
  it('syncs before the first command, with a 0xFF and a random id, and matches replies by id', async () => {
    const session = await open();
    expect(session.isSynced).toBe(false);
    await expect(session.send('guest-ping')).resolves.toEqual({});
    expect(session.isSynced).toBe(true);
    expect(received.map((r) => r.execute)).toEqual(['guest-sync-delimited', 'guest-ping']);
    expect(received[0]?.arguments?.id).toBeTypeOf('number');
    await session.close();
  });

  it('drops stale bytes and stale sync replies before its own sync reply', async () => {
    onConnect = (socket) => socket.write('{"return": {"version": "stale, cut sh');
    script = (request, socket) => {
      if (request.execute === 'guest-sync-delimited') {
        socket.write(Buffer.from('\xff{"return": 1}\n{"return": {}, "id": 7}\n', 'latin1'));
        agentLike(request, socket);
      } else agentLike(request, socket);
    };
    const session = await open();
    await expect(session.send('guest-ping')).resolves.toEqual({});
    expect(session.staleBytes).toBeGreaterThan(30);
    await session.close();
  });

  it('rejects arguments JSON cannot encode with nothing left armed, and stays in sync', async () => {
    const session = await open();
    await session.sync();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      // A BigInt: JSON.stringify throws. No timer may be left to fire (and unsync) later.
      await expect(
        session.send('guest-file-read', { handle: 1n }, { timeout: 50 }),
      ).rejects.toBeInstanceOf(TypeError);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
    expect(session.isSynced).toBe(true);
    await expect(session.send('guest-ping')).resolves.toEqual({});
    expect(received.map((r) => r.execute)).toEqual(['guest-sync-delimited', 'guest-ping']);
    await session.close();
  });

  it('reports a sync answered only with wrong ids as AgentSyncError, then syncs again', async () => {
    let wrong = true;
    script = (request, socket) => {
      if (request.execute === 'guest-sync-delimited' && wrong) {
        socket.write(Buffer.from([0xff]));
        socket.write(`{"return": ${(request.arguments?.id ?? 0) + 1}}\n`);
      } else agentLike(request, socket);
    };
    const session = await open();
    const error = await session.sync({ timeout: 200 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AgentSyncError', timeoutMs: 200 });
    expect((error as { stale: unknown[] }).stale).toHaveLength(1);
    wrong = false;
    await expect(session.send('guest-ping')).resolves.toEqual({});
    await session.close();
  });

  it('rejects a non-UTF-8 reply with QmpProtocolError and resyncs for the next command', async () => {
    let bad = true;
    script = (request, socket) => {
      if (request.execute === 'guest-ping' && bad) {
        bad = false;
        socket.write(Buffer.from([0x7b, 0x22, 0x72, 0xc3, 0x28, 0x22, 0x7d, 0x0a]));
      } else agentLike(request, socket);
    };
    const session = await open();
    await expect(session.send('guest-ping')).rejects.toMatchObject({
      name: 'QmpProtocolError',
      code: 'invalid-utf8',
    });
    expect(session.isSynced).toBe(false);
    await expect(session.send('guest-ping')).resolves.toEqual({});
    expect(received.map((r) => r.execute)).toEqual([
      'guest-sync-delimited',
      'guest-ping',
      'guest-sync-delimited',
      'guest-ping',
    ]);
    await session.close();
  });

  it('rejects with QmpDisconnectedError (cause: truncated) when the peer closes mid-reply', async () => {
    script = (request, socket) => {
      if (request.execute === 'guest-info') socket.end('{"return": {"version": "7.');
      else agentLike(request, socket);
    };
    const session = await open();
    const error = await session.send('guest-info').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'QmpDisconnectedError', command: 'guest-info' });
    expect((error as Error).cause).toMatchObject({ name: 'QmpProtocolError', code: 'truncated' });
    await expect(session.send('guest-ping')).rejects.toMatchObject({
      name: 'QmpDisconnectedError',
    });
    // The channel is usable again through a new connection.
    script = agentLike;
    const again = await open();
    await expect(again.send('guest-ping')).resolves.toEqual({});
    await again.close();
  });

  it('times a command out, then drops its late reply while resyncing', async () => {
    let held: (() => void) | undefined;
    script = (request, socket) => {
      if (request.execute === 'guest-fsfreeze-thaw')
        held = () => socket.write(`${JSON.stringify({ return: 3, id: request.id })}\n`);
      else agentLike(request, socket);
    };
    const session = await open();
    await expect(
      session.send('guest-fsfreeze-thaw', undefined, { timeout: 50 }),
    ).rejects.toMatchObject({ name: 'QmpTimeoutError', operation: 'guest-fsfreeze-thaw' });
    expect(session.isSynced).toBe(false);
    held?.(); // the late reply lands in the pipe before the next sync
    await expect(session.send('guest-ping')).resolves.toEqual({});
    await session.close();
  });

  it('treats a command without success response as accepted, closed, or failed', async () => {
    script = (request, socket) => {
      if (request.execute === 'guest-suspend-ram')
        socket.write(
          `${JSON.stringify({ error: { class: 'GenericError', desc: 'no suspend' }, id: request.id })}\n`,
        );
      else if (request.execute === 'guest-shutdown' && request.arguments?.mode === 'halt')
        return; // accepted: nothing, then the sync behind it is answered
      else if (request.execute === 'guest-shutdown') socket.destroy();
      else agentLike(request, socket);
    };
    const session = await open();
    await expect(session.sendNoReply('guest-suspend-ram')).rejects.toMatchObject({
      name: 'QmpCommandError',
      desc: 'no suspend',
    });
    await expect(session.sendNoReply('guest-shutdown', { mode: 'halt' })).resolves.toBe('accepted');
    await expect(session.sendNoReply('guest-shutdown')).resolves.toBe('closed');
  });

  it('ends the command in flight when told the agent is gone', async () => {
    script = (request, socket) => {
      if (request.execute !== 'guest-info') agentLike(request, socket);
    };
    const session = await open();
    await session.sync();
    const pending = session.send('guest-info');
    await new Promise((resolve) => setImmediate(resolve));
    session.agentGone((command) => new Error(`gone during ${command}`));
    await expect(pending).rejects.toThrow('gone during guest-info');
    expect(session.isSynced).toBe(false);
    await session.close();
  });
});

describe('AgentDecoder', () => {
  it('cuts a line at 0xFF, flags the message after it, and splits anywhere', () => {
    const got: unknown[] = [];
    const decoder = new AgentDecoder({
      message: (value, _line, delimited) => got.push({ value, delimited }),
      protocolError: (error) => got.push(error.code),
    });
    const bytes = Buffer.from('{"return": 1}\n{"cut\xff{"return": 2}\n[1]\n', 'latin1');
    for (const b of bytes) decoder.push(Buffer.from([b]));
    expect(got).toEqual([
      { value: { return: 1 }, delimited: false },
      { value: { return: 2 }, delimited: true },
      'not-an-object',
    ]);
    expect(decoder.staleBytes).toBe(5);
  });
});
