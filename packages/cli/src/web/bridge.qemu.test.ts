/**
 * `qmpkit bridge` against a real QEMU (the binary under test, `-S`, 16 MiB, two monitors:
 * one for the bridge, one for the test to check QEMU is unaffected). The bridge runs
 * in-process through `main` (as `qmpkit bridge` runs it) and is stopped with Ctrl-C.
 * Clients: `@qmpkit/transport`'s WebSocket client, and raw `ws` sockets for bad input.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { connect, type QmpClient } from '@qmpkit/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type RecordingIo, recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  startQemu,
  type TestQemu,
} from '../qemu.test-support.js';
import { CLOSE } from './gate.js';

qemuSuite({ prefix: 'qmpkit-bridge-' });

interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** A raw client: its first message (or none) and how it was closed. */
function raw(url: string): {
  ws: WebSocket;
  opened: Promise<void>;
  first: Promise<string | undefined>;
  closed: Promise<Closed>;
} {
  const ws = new WebSocket(url);
  const closed = new Promise<Closed>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const first = new Promise<string | undefined>((resolve) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.on('close', () => resolve(undefined));
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, opened, first, closed };
}

/** Starts `qmpkit bridge` in-process; resolves once it printed its URL. */
async function startCli(qmp: string) {
  const io: RecordingIo = recordingIo();
  const exited = main(['bridge', '--qmp', qmp, '--listen', '127.0.0.1:0'], io);
  // The URL is the first stdout line; poll the recording (no timing involved: the loop ends
  // when the line is there or the command ended).
  let done = false;
  void exited.finally(() => {
    done = true;
  });
  while (!io.out().includes('\n') && !done) await new Promise((r) => setImmediate(r));
  const url = io.out().trim();
  if (!url.startsWith('ws://')) throw new Error(`bridge did not start: ${io.err()}`);
  return { io, exited, url, withoutToken: url.replace(/\?token=.*$/, '') };
}

describe.skipIf(skipQemu)(`qmpkit bridge (real QEMU)${SKIP_REASON}`, () => {
  let qemu: TestQemu;
  let aux: QmpClient;
  let cli: Awaited<ReturnType<typeof startCli>>;

  beforeAll(async () => {
    qemu = await startQemu();
    aux = await connect(qemu.aux);
    cli = await startCli(qemu.address);
  });

  afterAll(async () => {
    cli?.io.interrupt();
    await cli?.exited;
    await aux?.close();
    await qemu?.stop();
  });

  it('prints a loopback URL with a random token', () => {
    expect(cli.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{22}$/);
    expect(cli.io.err()).toMatch(/listening on 127\.0\.0\.1:\d+ for QMP at unix:/);
  });

  it("the transport's WebSocket client runs commands and gets events through it", async () => {
    const qmp = await connect(cli.url, { WebSocket });
    try {
      expect(await qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
      // The schema reply is one line of hundreds of KiB: it arrives whole, as one frame.
      const schema = await qmp.execute('query-qmp-schema');
      expect(schema.length).toBeGreaterThan(1000);
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

  it('a wrong token is closed with 4401; QEMU is unaffected', async () => {
    const client = raw(`${cli.withoutToken}?token=not-the-token`);
    expect(await client.first).toBeUndefined();
    expect(await client.closed).toEqual({ code: CLOSE.badToken, reason: 'wrong token' });
    expect(cli.io.err()).toMatch(/closed \(4401\): wrong token/);
    expect(await aux.execute('query-status')).toMatchObject({ running: false });
  });

  it('without a token in the URL, the first message must carry it', async () => {
    const wrong = raw(cli.withoutToken);
    await wrong.opened;
    wrong.ws.send(JSON.stringify({ execute: 'query-status' }));
    expect((await wrong.closed).code).toBe(CLOSE.badToken);
    expect((await wrong.closed).reason).toMatch(/^no token: /);

    const right = raw(cli.withoutToken);
    await right.opened;
    right.ws.send(JSON.stringify({ token: new URL(cli.url).searchParams.get('token') }));
    expect(JSON.parse((await right.first) ?? 'null')).toHaveProperty('QMP');
    right.ws.close();
    expect((await right.closed).code).toBe(1005);
  });

  it('a second client while one is connected is closed with 4409; the first keeps working', async () => {
    const first = await connect(cli.url, { WebSocket });
    try {
      const second = raw(cli.url);
      expect(await second.closed).toEqual({
        code: CLOSE.busy,
        reason: 'monitor busy: another client is connected (QMP serves one at a time)',
      });
      expect(await first.execute('query-status')).toMatchObject({ running: false });
    } finally {
      await first.close();
    }
    // After the first left, the monitor is free again.
    const next = await connect(cli.url, { WebSocket });
    expect(await next.execute('query-name')).toEqual({});
    await next.close();
  });

  it('a binary frame closes with 1003, a frame that is not JSON with 1007; the bridge serves on', async () => {
    const binary = raw(cli.url);
    expect(JSON.parse((await binary.first) ?? 'null')).toHaveProperty('QMP');
    binary.ws.send(Buffer.from('{"execute":"qmp_capabilities"}'));
    expect(await binary.closed).toEqual({
      code: CLOSE.binary,
      reason: 'binary frames are not supported: send JSON as text frames',
    });

    // A command cut in the middle (a page that sent half a message).
    const cut = raw(cli.url);
    await cut.first;
    cut.ws.send('{"execute": "qmp_capa');
    expect(await cut.closed).toEqual({
      code: CLOSE.badFrame,
      reason: 'a text frame must hold one complete JSON value (one QMP command)',
    });
    // Both refusals are in the bridge's log, with the client and the code.
    expect(cli.io.err()).toMatch(
      /client \d+ \(.*\): closed \(1003\): binary frames are not supported/,
    );
    expect(cli.io.err()).toMatch(/client \d+ \(.*\): closed \(1007\): a text frame must hold/);

    // A client that vanishes without a close handshake.
    const gone = raw(cli.url);
    await gone.first;
    gone.ws.terminate();
    await gone.closed;

    const qmp = await connect(cli.url, { WebSocket });
    expect(await qmp.execute('query-status')).toMatchObject({ running: false });
    await qmp.close();
    expect(await aux.execute('query-status')).toMatchObject({ running: false });
  });

  it('a connection that drops in the middle of a frame, or of a fragmented message, is logged as gone (1006); the bridge serves on, QEMU unaffected', async () => {
    // Two raw TCP clients speak the WebSocket handshake themselves, then stop mid-message:
    // one inside a frame's payload (the header says 100 bytes, 10 come), one after the first
    // fragment of a message whose final fragment never comes.
    const cut = async (frames: Buffer) => {
      const url = new URL(cli.url);
      const socket = net.connect(Number(url.port), url.hostname);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const port = socket.localPort;
      socket.write(
        [
          `GET /${url.search} HTTP/1.1`,
          `Host: ${url.host}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          '',
          '',
        ].join('\r\n'),
      );
      // The bridge answers 101 and then QEMU's greeting as a frame: the session is up.
      let seen = '';
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          seen += chunk.toString('latin1');
          if (seen.startsWith('HTTP/1.1 101') && seen.includes('"QMP"')) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
      socket.write(frames);
      socket.destroy();
      const gone = new RegExp(`:${port}\\): gone \\(1006\\)`);
      while (!gone.test(cli.io.err())) await new Promise((r) => setImmediate(r));
    };
    /** A client frame (masked, as RFC 6455 requires): FIN bit, opcode, declared length. */
    const frame = (fin: boolean, opcode: number, declared: number, payload: string) => {
      const mask = randomBytes(4);
      const body = Buffer.from(payload).map((b, i) => b ^ mask[i % 4]!);
      return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | declared]), mask, body]);
    };
    await cut(frame(true, 0x1, 100, '{"execute"'));
    const first = '{"execute":"qmp_capabilities"}';
    await cut(frame(false, 0x1, first.length, first));
    // The bridge serves the next client; QEMU (seen through the other monitor) is unaffected.
    const qmp = await connect(cli.url, { WebSocket });
    expect(await qmp.execute('query-status')).toMatchObject({ running: false });
    await qmp.close();
    expect(await aux.execute('query-status')).toMatchObject({ running: false });
  });

  it('a QEMU that goes away closes its client with 4502; the bridge keeps running', async () => {
    const doomed = await startQemu();
    const other = await startCli(doomed.address);
    try {
      const client = raw(other.url);
      expect(JSON.parse((await client.first) ?? 'null')).toHaveProperty('QMP');
      await doomed.stop();
      expect(await client.closed).toEqual({
        code: CLOSE.upstreamGone,
        reason: 'QEMU closed the monitor connection',
      });
      const again = raw(other.url);
      const closed = await again.closed;
      expect(closed.code).toBe(CLOSE.upstreamGone);
      expect(closed.reason).toMatch(/^cannot reach QMP at unix:.*: (ENOENT|ECONNREFUSED)$/);
    } finally {
      other.io.interrupt();
      expect(await other.exited).toBe(0);
    }
  });

  it('Ctrl-C closes connected clients with 1001 and exits 0', async () => {
    const own = await startCli(qemu.address);
    const client = raw(own.url);
    await client.opened;
    own.io.interrupt();
    expect(await client.closed).toEqual({ code: CLOSE.shutdown, reason: 'server shutting down' });
    expect(await own.exited).toBe(0);
    expect(own.io.err()).toMatch(/shutting down/);
    // QEMU still serves the next client.
    expect(await aux.execute('query-status')).toMatchObject({ running: false });
  });
});
