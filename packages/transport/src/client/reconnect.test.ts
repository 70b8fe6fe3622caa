/**
 * A reconnecting client never hangs (issue #12 §3): QEMU serves one QMP client at a time, so
 * a re-dial can land in the listen backlog behind another client and get no greeting. Every
 * dial, greeting and negotiation is bounded; a call issued while reconnecting is bounded by
 * its own timeout and by `reconnect.waitTimeout`; `close()` ends an attempt in progress.
 * Each test's peer decides by construction (not by timing) what the client sees.
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GREETING, rawPeer } from '../__tests__/helpers.js';
import { QmpDisconnectedError, QmpTimeoutError } from '../errors.js';
import { connect } from './client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/**
 * The first connection gets a greeting and a working monitor (until `drop()`), every later
 * one is accepted and then left silent: the single monitor is "held by someone else".
 */
async function monitorHeldAfterFirst() {
  const silent: net.Socket[] = [];
  const closedSilent: net.Socket[] = [];
  let first: net.Socket | undefined;
  let connectedWaiters: (() => void)[] = [];
  const peer = await rawPeer((socket) => {
    if (first === undefined) {
      first = socket;
      // A working monitor: enough of QMP for the handshake and query-status.
      socket.write(GREETING);
      socket.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.includes('qmp_capabilities') || line.includes('query-status')) {
            const id = /"id":\s*("[^"]*"|\d+)/.exec(line)?.[1];
            const value = line.includes('query-status')
              ? { status: 'running', singlestep: false, running: true }
              : {};
            socket.write(
              `${JSON.stringify({ return: value, ...(id ? { id: JSON.parse(id) } : {}) })}\r\n`,
            );
          }
        }
      });
      return;
    }
    silent.push(socket);
    socket.on('close', () => closedSilent.push(socket));
    const waiters = connectedWaiters;
    connectedWaiters = [];
    for (const w of waiters) w();
  });
  cleanups.push(async () => {
    await peer.close();
  });
  return {
    address: peer.address,
    silent,
    closedSilent,
    drop: () => first?.destroy(),
    /** Resolves once `n` silent connections have arrived. */
    silentConnections: (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (silent.length >= n ? resolve() : connectedWaiters.push(check));
        check();
      }),
  };
}

describe('a reconnecting client never hangs', () => {
  it('gives up on a re-dial that gets no greeting, closes that socket, and dials again', async () => {
    const peer = await monitorHeldAfterFirst();
    // The same timeout bounds the first connect, whose greeting must come in time on a busy
    // machine (100 ms failed under load 15); the re-dial's silence waits it out once.
    const qmp = await connect(peer.address, {
      connectTimeout: 1_000,
      reconnect: { initialDelay: 1, maxDelay: 1 },
      logger: { warn: () => {} },
    });
    peer.drop();
    await peer.silentConnections(2);
    // The first silent attempt was abandoned (its socket closed) before the next one dialled.
    expect(peer.closedSilent).toContain(peer.silent[0]);
    await qmp.close();
  });

  it('a call issued while reconnecting is bounded by its own timeout', async () => {
    const peer = await monitorHeldAfterFirst();
    const qmp = await connect(peer.address, {
      connectTimeout: 60_000,
      reconnect: { initialDelay: 1 },
      logger: { warn: () => {} },
    });
    peer.drop();
    await peer.silentConnections(1);
    expect(qmp.state).toBe('reconnecting');
    const error = await qmp.execute('query-status', undefined, { timeout: 50 }).catch((e) => e);
    expect(error).toBeInstanceOf(QmpTimeoutError);
    await qmp.close();
  });

  it('a call without a timeout is bounded by reconnect.waitTimeout', async () => {
    const peer = await monitorHeldAfterFirst();
    const qmp = await connect(peer.address, {
      connectTimeout: 60_000,
      reconnect: { initialDelay: 1, waitTimeout: 50 },
      logger: { warn: () => {} },
    });
    peer.drop();
    await peer.silentConnections(1);
    const error = await qmp.execute('query-status').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpDisconnectedError);
    expect((error as Error).cause).toBeInstanceOf(QmpTimeoutError);
    await qmp.close();
  });

  it('close() ends a re-dial that waits for a greeting, without waiting for connectTimeout', async () => {
    const peer = await monitorHeldAfterFirst();
    const qmp = await connect(peer.address, {
      connectTimeout: 600_000,
      reconnect: { initialDelay: 1 },
      logger: { warn: () => {} },
    });
    peer.drop();
    await peer.silentConnections(1);
    const reason = await qmp.close();
    expect(reason.byClient).toBe(true);
    expect(qmp.state).toBe('closed');
  });
});
