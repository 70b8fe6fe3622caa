import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeQmp, GREETING, rawPeer } from '../__tests__/helpers.js';
import { connect } from '../client/client.js';
import { encodeError, encodeEvent, encodeReturn } from '../codec/encoder.js';
import {
  isQmpConnectionError,
  isQmpDisconnectedError,
  isQmpProtocolError,
  QmpCommandError,
  QmpConnectionError,
  QmpDisconnectedError,
  QmpProtocolError,
  QmpTimeoutError,
} from '../errors.js';
import { parseAddress } from '../transports/address.js';
import { dial } from '../transports/dial.node.js';
import { QmpSession } from './session.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function peer(onConnection: (socket: net.Socket) => void) {
  const p = await rawPeer(onConnection);
  cleanups.push(p.close);
  return p;
}
async function fake(...args: Parameters<typeof fakeQmp>) {
  const p = await fakeQmp(...args);
  cleanups.push(p.close);
  return p;
}
function closedOnPeer(socket: net.Socket | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!socket || socket.destroyed || socket.readableEnded) resolve();
    else socket.once('close', () => resolve());
  });
}

describe('handshake', () => {
  it('negotiates oob when offered', async () => {
    const server = await fake();
    const qmp = await connect(server.address);
    expect(qmp.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(qmp.capabilities).toEqual(['oob']);
    expect(server.commands[0]).toMatchObject({
      execute: 'qmp_capabilities',
      arguments: { enable: ['oob'] },
    });
    expect(qmp.state).toBe('ready');
    await qmp.close();
    expect(qmp.state).toBe('closed');
  });

  it('does not enable oob when told not to', async () => {
    const server = await fake();
    const qmp = await connect(server.address, { oob: false });
    expect(qmp.capabilities).toEqual([]);
    expect(server.commands[0]).toEqual({ execute: 'qmp_capabilities', id: 1 });
    await expect(qmp.executeOob('migrate-recover', { uri: 'x' })).rejects.toThrow(/oob/);
    await qmp.close();
  });

  it('delivers events that arrive before the greeting and during negotiation', async () => {
    const seen: string[] = [];
    const server = await peer((socket) => {
      socket.write(encodeEvent('VSERPORT_CHANGE', { id: 'c', open: true }));
      socket.write(GREETING);
      socket.on('data', (chunk) => {
        const id = JSON.parse(chunk.toString()).id;
        socket.write(encodeEvent('RESUME'));
        socket.write(encodeReturn({}, id));
      });
    });
    const qmp = await connect(server.address, { onEvent: (e) => seen.push(e.event) });
    expect(seen).toEqual(['VSERPORT_CHANGE', 'RESUME']);
    await qmp.close();
  });

  it('fails negotiation with a typed error', async () => {
    const server = await fake((cmd) =>
      cmd.execute === 'qmp_capabilities' ? { error: ['GenericError', 'nope'] } : undefined,
    );
    const error = await connect(server.address).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpProtocolError);
    expect((error as QmpProtocolError).code).toBe('negotiation-failed');
  });

  it('reports ENOENT for a missing socket', async () => {
    const error = await connect('unix:/nonexistent/qmp.sock').catch((e: unknown) => e);
    expect(isQmpConnectionError(error)).toBe(true);
    expect((error as QmpConnectionError).code).toBe('ENOENT');
    expect((error as QmpConnectionError).address).toBe('unix:/nonexistent/qmp.sock');
  });
});

describe('runstate: onStateChange', () => {
  it('reports connecting → negotiating → ready → closing → closed, each as `state` reads it', async () => {
    const states: string[] = [];
    let atNegotiation: string | undefined;
    const server = await peer((socket) => {
      socket.write(GREETING);
      socket.on('data', (chunk) => {
        const { execute, id } = JSON.parse(chunk.toString()) as { execute: string; id: number };
        if (execute === 'qmp_capabilities') atNegotiation = states.at(-1);
        socket.write(encodeReturn({}, id));
      });
    });
    let session: QmpSession | undefined;
    const channel = await dial(parseAddress(server.address));
    session = await QmpSession.open(channel, {
      onStateChange: (state) => {
        // The getter already answers the new state (the session exists once `open` resolves).
        if (session) expect(session.state).toBe(state);
        states.push(state);
      },
    });
    expect(atNegotiation).toBe('negotiating');
    expect(states).toEqual(['connecting', 'negotiating', 'ready']);
    await session.send('query-status');
    const closing = session.close();
    expect(states.at(-1)).toBe('closing');
    expect(session.state).toBe('closing');
    expect(await closing).toEqual({ byClient: true, error: undefined });
    expect(states).toEqual(['connecting', 'negotiating', 'ready', 'closing', 'closed']);
  });

  it('skips negotiating without negotiation, and closing when the peer hangs up', async () => {
    const states: string[] = [];
    const sockets: net.Socket[] = [];
    const server = await peer((socket) => {
      sockets.push(socket);
      socket.write(GREETING);
    });
    const session = await QmpSession.open(await dial(parseAddress(server.address)), {
      negotiate: false,
      onStateChange: (state) => states.push(state),
    });
    expect(states).toEqual(['connecting', 'ready']);
    sockets[0]!.end();
    expect((await session.closed).byClient).toBe(false);
    expect(states).toEqual(['connecting', 'ready', 'closed']);
  });

  it('a failed handshake goes from negotiating straight to closed; a throwing handler is logged', async () => {
    const states: string[] = [];
    const warnings: string[] = [];
    const server = await peer((socket) => {
      socket.write(GREETING);
      socket.on('data', () => socket.destroy());
    });
    const error = await QmpSession.open(await dial(parseAddress(server.address)), {
      logger: { warn: (message) => warnings.push(message) },
      onStateChange: (state) => {
        states.push(state);
        if (state === 'negotiating') throw new Error('handler bug');
      },
    }).catch((e: unknown) => e);
    expect(isQmpConnectionError(error)).toBe(true);
    expect(states).toEqual(['connecting', 'negotiating', 'closed']);
    expect(warnings).toEqual(['onStateChange handler threw']);
  });
});

describe('bad input: typed error, session closed, nothing pending', () => {
  it.each([
    ['garbage before the greeting', `garbage\r\n${GREETING}`, 'invalid-json'],
    ['garbage instead of the greeting', 'SSH-2.0-OpenSSH_9.2\r\n', 'invalid-json'],
    [
      'a greeting without QMP',
      '{"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}\r\n',
      'unknown-shape',
    ],
    ['a reply before the greeting', '{"return": {}, "id": 1}\r\n', 'unknown-id'],
    [
      'invalid UTF-8 instead of the greeting',
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]),
      'invalid-utf8',
    ],
  ])('%s', async (_name, bytes, code) => {
    let socket: net.Socket | undefined;
    const server = await peer((s) => {
      socket = s;
      s.write(bytes);
    });
    const error = await connect(server.address).catch((e: unknown) => e);
    expect(isQmpProtocolError(error)).toBe(true);
    expect((error as QmpProtocolError).code).toBe(code);
    await closedOnPeer(socket);
  });

  it('a greeting followed by garbage in the same chunk', async () => {
    const closes: unknown[] = [];
    const server = await peer((s) => s.write(`${GREETING}garbage\r\n`));
    const channel = await dial(parseAddress(server.address));
    const error = await QmpSession.open(channel, { onClose: (r) => closes.push(r) }).catch(
      (e: unknown) => e,
    );
    expect((error as QmpProtocolError).code).toBe('invalid-json');
    expect(closes).toHaveLength(1);
  });

  it('a peer that accepts and never speaks: connect timeout', async () => {
    let socket: net.Socket | undefined;
    const server = await peer((s) => {
      socket = s;
    });
    const t0 = performance.now();
    const error = await connect(server.address, { connectTimeout: 150 }).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(error).toBeInstanceOf(QmpConnectionError);
    expect((error as QmpConnectionError).code).toBe('ETIMEDOUT');
    expect((error as Error).cause).toBeInstanceOf(QmpTimeoutError);
    await closedOnPeer(socket);
  });

  it('a peer that closes during the greeting', async () => {
    const server = await peer((s) => {
      s.end('{"QMP": {"version": ');
    });
    const error = await connect(server.address).catch((e: unknown) => e);
    // The partial line is a protocol error (truncated); it wins over the plain EOF.
    expect(isQmpProtocolError(error)).toBe(true);
    expect((error as QmpProtocolError).code).toBe('truncated');
  });

  async function afterHandshake(
    reply: (socket: net.Socket, id: number) => void,
    maxLineBytes?: number,
  ) {
    let socket: net.Socket | undefined;
    const server = await peer((s) => {
      socket = s;
      s.write(GREETING);
      let n = 0;
      s.on('data', (chunk) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const id = JSON.parse(line).id as number;
          if (n++ === 0) s.write(encodeReturn({}, id));
          else reply(s, id);
        }
      });
    });
    const qmp = await connect(server.address, maxLineBytes ? { maxLineBytes } : {});
    const pending = qmp.execute('query-status').catch((e: unknown) => e);
    const other = qmp.execute('query-version').catch((e: unknown) => e);
    const [a, b] = await Promise.all([pending, other]);
    const reason = await qmp.closed;
    expect(qmp.state).toBe('closed');
    expect(qmp.pendingCount).toBe(0);
    await closedOnPeer(socket);
    return { a, b, reason };
  }

  it('a reply with an unknown id', async () => {
    const { a, b, reason } = await afterHandshake((s) => s.write(encodeReturn({}, 4242)));
    expect(a).toBeInstanceOf(QmpDisconnectedError);
    expect((a as QmpDisconnectedError).command).toBe('query-status');
    expect(isQmpDisconnectedError(b)).toBe(true);
    expect(reason.error).toBeInstanceOf(QmpProtocolError);
    expect((reason.error as QmpProtocolError).code).toBe('unknown-id');
    expect((a as Error).cause).toBe(reason.error);
  });

  it('a line over the limit', async () => {
    const { a, reason } = await afterHandshake(
      (s, id) => s.write(encodeReturn('x'.repeat(5000), id)),
      1024,
    );
    expect(a).toBeInstanceOf(QmpDisconnectedError);
    expect((reason.error as QmpProtocolError).code).toBe('line-too-long');
  });

  it('invalid UTF-8 in a reply', async () => {
    const { a, reason } = await afterHandshake((s, id) =>
      s.write(
        Buffer.concat([
          Buffer.from('{"return": "'),
          Buffer.from([0xe2, 0x28, 0xa1]),
          Buffer.from(`", "id": ${id}}\r\n`),
        ]),
      ),
    );
    expect(a).toBeInstanceOf(QmpDisconnectedError);
    expect((reason.error as QmpProtocolError).code).toBe('invalid-utf8');
  });

  it('a peer that closes mid-message', async () => {
    const { a, b, reason } = await afterHandshake((s) => s.end(`{"return": {"status": "run`));
    expect(a).toBeInstanceOf(QmpDisconnectedError);
    expect(b).toBeInstanceOf(QmpDisconnectedError);
    expect((reason.error as QmpProtocolError).code).toBe('truncated');
  });

  it('an error without id (QEMU could not parse the input)', async () => {
    const { a, reason } = await afterHandshake((s) =>
      s.write(encodeError('GenericError', 'JSON parse error, expecting value')),
    );
    expect(a).toBeInstanceOf(QmpDisconnectedError);
    expect((reason.error as QmpProtocolError).code).toBe('unattributed-error');
  });

  it('a peer that sends commands (it is a client)', async () => {
    const { reason } = await afterHandshake((s) => s.write('{"execute": "stop"}\r\n'));
    expect((reason.error as QmpProtocolError).code).toBe('unexpected-message');
  });

  it('unknown ids can be dropped instead (onUnknownId: drop)', async () => {
    const warnings: string[] = [];
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') conn.send(encodeReturn({}, 'not-ours'));
      return undefined;
    });
    const qmp = await connect(server.address, {
      onUnknownId: 'drop',
      logger: { warn: (m) => warnings.push(m) },
    });
    await expect(qmp.execute('query-version')).rejects.toBeInstanceOf(QmpCommandError);
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'running' });
    expect(warnings.join()).toMatch(/never issued/);
    await qmp.close();
  });
});

describe('timeouts, aborts and late replies', () => {
  it('drops the late reply of a timed-out command and keeps the session consistent', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') {
        setTimeout(() => conn.send(encodeReturn({ late: true }, cmd.id)), 80);
        return 'no-reply';
      }
      return undefined;
    });
    const qmp = await connect(server.address);
    const error = await qmp
      .execute('query-version', undefined, { timeout: 20 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect((error as QmpTimeoutError).operation).toBe('query-version');
    expect(qmp.pendingCount).toBe(0);
    await new Promise((r) => setTimeout(r, 120));
    const results = await Promise.all(
      Array.from({ length: 20 }, () => qmp.execute('query-status')),
    );
    expect(results.every((r) => r.status === 'running')).toBe(true);
    expect(qmp.state).toBe('ready');
    await qmp.close();
  });

  it('rejects with the abort reason and drops the late reply', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') {
        setTimeout(() => conn.send(encodeReturn({}, cmd.id)), 50);
        return 'no-reply';
      }
      return undefined;
    });
    const qmp = await connect(server.address);
    const controller = new AbortController();
    const p = qmp.execute('query-version', undefined, { signal: controller.signal });
    controller.abort(new Error('changed my mind'));
    await expect(p).rejects.toThrow('changed my mind');
    const pre = new AbortController();
    pre.abort(new Error('before'));
    await expect(qmp.execute('query-status', undefined, { signal: pre.signal })).rejects.toThrow(
      'before',
    );
    await new Promise((r) => setTimeout(r, 80));
    await expect(qmp.execute('query-status')).resolves.toMatchObject({ running: true });
    await qmp.close();
  });

  it('close() rejects pending commands with QmpDisconnectedError', async () => {
    const server = await fake(() => 'no-reply');
    // The fake never answers qmp_capabilities: connect times out in negotiation.
    const failed = await connect(server.address, { connectTimeout: 100 }).catch((e: unknown) => e);
    expect((failed as QmpConnectionError).code).toBe('ETIMEDOUT');
    const server2 = await fake((cmd) => (cmd.execute === 'query-version' ? 'no-reply' : undefined));
    const qmp2 = await connect(server2.address);
    const p = qmp2.execute('query-version').catch((e: unknown) => e);
    const reason = await qmp2.close();
    expect(reason.byClient).toBe(true);
    expect(await p).toBeInstanceOf(QmpDisconnectedError);
    await expect(qmp2.execute('query-status')).rejects.toBeInstanceOf(QmpDisconnectedError);
  });
});

describe('reconnect', () => {
  it('reconnects with backoff after the peer drops the connection', async () => {
    let connections = 0;
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'qmp_capabilities') connections++;
      if (cmd.execute === 'query-version') {
        conn.socket.destroy();
        return 'no-reply';
      }
      return undefined;
    });
    const reconnects: number[] = [];
    const qmp = await connect(server.address, {
      reconnect: { initialDelay: 10, onReconnect: (n) => reconnects.push(n) },
    });
    const error = await qmp.execute('query-version').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    // Commands issued while reconnecting wait for the new session.
    await expect(qmp.execute('query-status')).resolves.toMatchObject({ running: true });
    expect(connections).toBe(2);
    expect(reconnects).toEqual([1]);
    const reason = await qmp.close();
    expect(reason.byClient).toBe(true);
  });

  it('close() during the backoff returns at once; aborts of waiting calls keep their reason', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') {
        conn.socket.destroy();
        return 'no-reply';
      }
      return undefined;
    });
    const qmp = await connect(server.address, {
      reconnect: { initialDelay: 5000 },
      logger: { warn: () => {} },
    });
    await qmp.execute('query-version').catch(() => undefined);
    expect(qmp.state).toBe('reconnecting');
    const controller = new AbortController();
    const waiting = qmp.execute('query-status', undefined, { signal: controller.signal });
    controller.abort(new Error('not any more'));
    await expect(waiting).rejects.toThrow('not any more');
    const t0 = performance.now();
    const reason = await qmp.close();
    expect(performance.now() - t0).toBeLessThan(500);
    expect(reason.byClient).toBe(true);
  });

  it('gives up after maxAttempts and resolves closed with the error', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') {
        conn.socket.destroy();
        return 'no-reply';
      }
      return undefined;
    });
    const qmp = await connect(server.address, {
      reconnect: { initialDelay: 5, maxAttempts: 2 },
      logger: { warn: () => {} },
    });
    await server.close();
    cleanups.pop();
    await qmp.execute('query-version').catch(() => undefined);
    const reason = await qmp.closed;
    expect(reason.byClient).toBe(false);
    expect(isQmpConnectionError(reason.error)).toBe(true);
  });
});

describe("correlate: 'order'", () => {
  it('sends in-band commands without id, matches replies in order, attributes id-less errors', async () => {
    const server = await fake((cmd) =>
      cmd.execute === 'bad'
        ? { error: ['GenericError', 'JSON parse error, expecting value'] }
        : undefined,
    );
    const qmp = await connect(server.address, { correlate: 'order' });
    const [a, b, c] = await Promise.all([
      qmp.execute('query-status'),
      qmp.executeUnchecked('bad').catch((e: unknown) => e),
      qmp.execute('query-status'),
    ]);
    expect(a).toMatchObject({ running: true });
    expect(b).toMatchObject({ errorClass: 'GenericError', command: 'bad' });
    expect(c).toMatchObject({ running: true });
    expect(server.commands.every((cmd) => cmd.id === undefined)).toBe(true);
    await qmp.close();
  });

  it('drops the late reply of a timed-out command; later replies go to their own calls', async () => {
    // Like QEMU: replies in the order commands arrived, without ids. The first query-version
    // is answered only when the test says so, and everything after it waits behind it.
    const queue: (() => void)[] = [];
    let holding = false;
    let release: () => void = () => {};
    const server = await fake((cmd, conn) => {
      const reply = () => {
        if (cmd.execute === 'x-echo') conn.send(encodeReturn(cmd.arguments));
        else if (cmd.execute === 'query-version') conn.send(encodeReturn({ late: true }));
        else if (cmd.execute === 'query-status')
          conn.send(encodeReturn({ status: 'running', singlestep: false, running: true }));
        else
          conn.send(
            encodeError('CommandNotFound', `The command ${cmd.execute} has not been found`),
          );
      };
      if (cmd.execute === 'qmp_capabilities') return undefined;
      if (holding) queue.push(reply);
      else if (cmd.execute === 'query-version') {
        holding = true;
        release = () => {
          holding = false;
          reply();
          for (const next of queue.splice(0)) next();
        };
      } else reply();
      return 'no-reply';
    });
    const warnings: string[] = [];
    const qmp = await connect(server.address, {
      correlate: 'order',
      logger: { warn: (m) => warnings.push(m) },
    });
    const error = await qmp
      .execute('query-version', undefined, { timeout: 20 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpTimeoutError);
    // It was sent: the server saw it (so its reply will come).
    expect(server.commands.map((c) => c.execute)).toContain('query-version');
    const calls = [
      qmp.executeUnchecked('x-echo', { n: 1 }),
      qmp.execute('query-status'),
      qmp.executeUnchecked('nope').catch((e: unknown) => e),
      qmp.executeUnchecked('x-echo', { n: 2 }),
    ];
    release();
    const [one, status, nope, two] = await Promise.all(calls);
    expect(one).toEqual({ n: 1 });
    expect(status).toMatchObject({ running: true });
    expect(nope).toMatchObject({ errorClass: 'CommandNotFound', command: 'nope' });
    expect(two).toEqual({ n: 2 });
    expect(qmp.pendingCount).toBe(0);
    expect(qmp.state).toBe('ready');
    expect(warnings).toEqual([]);
    expect(server.commands.every((c) => c.id === undefined)).toBe(true);
    await qmp.close();
  });

  it('still treats a reply with an id it never issued as a protocol error', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-version') conn.send(encodeReturn({}, 77));
      return cmd.execute === 'query-version' ? 'no-reply' : undefined;
    });
    const qmp = await connect(server.address, { correlate: 'order' });
    await expect(qmp.execute('query-version')).rejects.toBeInstanceOf(QmpDisconnectedError);
    expect(((await qmp.closed).error as QmpProtocolError).code).toBe('unknown-id');
  });

  it('treats a reply when nothing is pending as a protocol error', async () => {
    let socket: net.Socket | undefined;
    const server = await fake((_cmd, conn) => {
      socket = conn.socket;
      return undefined;
    });
    const qmp = await connect(server.address, { correlate: 'order' });
    socket?.write(encodeReturn({}));
    const reason = await qmp.closed;
    expect((reason.error as QmpProtocolError).code).toBe('unknown-id');
  });
});

describe('maxInFlight', () => {
  it('queues in-band commands beyond the window; a timed-out waiting command is never sent', async () => {
    let outstanding = 0;
    let maxOutstanding = 0;
    const server = await fake((cmd, conn) => {
      if (cmd.execute !== 'query-name') return undefined;
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      setTimeout(() => {
        outstanding--;
        conn.send(encodeReturn({ name: (cmd.arguments as { n?: number } | undefined)?.n }, cmd.id));
      }, 15);
      return 'no-reply';
    });
    const qmp = await connect(server.address, { maxInFlight: 2 });
    const name = (n: number, timeout?: number) =>
      qmp.executeUnchecked('query-name', { n }, timeout === undefined ? {} : { timeout });
    const calls = [name(1), name(2), name(3, 5).catch((e: unknown) => e), name(4), name(5)];
    expect(qmp.pendingCount).toBe(5);
    const results = await Promise.all(calls);
    expect(results[2]).toBeInstanceOf(QmpTimeoutError);
    expect(results.filter((_r, i) => i !== 2)).toEqual([1, 2, 4, 5].map((n) => ({ name: n })));
    expect(maxOutstanding).toBe(2);
    const sent = server.commands
      .filter((c) => c.execute === 'query-name')
      .map((c) => (c.arguments as { n: number }).n);
    expect(sent).toEqual([1, 2, 4, 5]); // 3 timed out while waiting: QEMU never saw it
    expect(qmp.pendingCount).toBe(0);
    await qmp.close();
  });

  it('defaults to 8 with oob, so exec-oob commands are always written at once', async () => {
    let maxOutstanding = 0;
    let outstanding = 0;
    const server = await fake((cmd, conn) => {
      if (cmd['exec-oob']) return { return: [] };
      if (cmd.execute !== 'query-name') return undefined;
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      setTimeout(() => {
        outstanding--;
        conn.send(encodeReturn({}, cmd.id));
      }, 2);
      return 'no-reply';
    });
    const qmp = await connect(server.address);
    const order: string[] = [];
    const inBand = Array.from({ length: 30 }, () =>
      qmp.execute('query-name').then(() => order.push('in-band')),
    );
    const oob = qmp.executeOob('query-yank').then(() => order.push('oob'));
    await Promise.all([...inBand, oob]);
    expect(maxOutstanding).toBe(8);
    expect(order.indexOf('oob')).toBeLessThan(10);
    await qmp.close();
  });

  it('rejects waiting commands with QmpDisconnectedError when the connection drops', async () => {
    const server = await fake((cmd, conn) => {
      if (cmd.execute === 'query-name') {
        setTimeout(() => conn.socket.destroy(), 10);
        return 'no-reply';
      }
      return undefined;
    });
    const qmp = await connect(server.address, { maxInFlight: 1 });
    const results = await Promise.all(
      Array.from({ length: 4 }, () => qmp.execute('query-name').catch((e: unknown) => e)),
    );
    expect(results.every((r) => r instanceof QmpDisconnectedError)).toBe(true);
    expect(qmp.pendingCount).toBe(0);
  });
});

describe('trace', () => {
  it('reports each line sent and received, whole, however the bytes were cut', async () => {
    // The peer answers in pieces: a greeting cut mid-line and a reply whose two-byte
    // character is split between writes, so the tap must reassemble lines and UTF-8.
    const reply = Buffer.from('{"return": {"name": "café"}, "id": 2}\r\n');
    const cut = reply.indexOf(0xc3) + 1;
    const server = await peer((socket) => {
      socket.write(GREETING.slice(0, 10));
      socket.write(GREETING.slice(10));
      let buffered = '';
      socket.on('data', (data) => {
        buffered += data.toString();
        if (buffered.includes('qmp_capabilities') && !buffered.includes('\u0001')) {
          buffered += '\u0001';
          socket.write('{"return": {}, "id": 1}\r\n');
        }
        if (buffered.includes('query-name')) {
          socket.write(reply.subarray(0, cut));
          socket.write(reply.subarray(cut));
        }
      });
    });
    const lines: string[] = [];
    const qmp = await connect(server.address, {
      trace: (direction, line) => lines.push(`${direction === 'send' ? '>' : '<'} ${line}`),
    });
    expect(await qmp.executeUnchecked('query-name')).toEqual({ name: 'café' });
    await qmp.close();
    expect(lines).toEqual([
      `< ${GREETING.replace(/\r\n$/, '')}`,
      '> {"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":1}',
      '< {"return": {}, "id": 1}',
      '> {"execute":"query-name","id":2}',
      '< {"return": {"name": "café"}, "id": 2}',
    ]);
  });

  it('logs a throwing tap and goes on', async () => {
    const server = await fake();
    const warnings: string[] = [];
    const qmp = await connect(server.address, {
      logger: { warn: (message) => warnings.push(message) },
      trace: () => {
        throw new Error('tap broke');
      },
    });
    expect(await qmp.executeUnchecked('query-status')).toMatchObject({ status: 'running' });
    await qmp.close();
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.every((w) => w === 'trace handler threw')).toBe(true);
  });
});
