import { afterEach, describe, expect, it } from 'vitest';
import { fakeQmp } from '../__tests__/helpers.js';
import { encodeReturn } from '../codec/encoder.js';
import {
  isQmpEventOverflowError,
  QmpDisconnectedError,
  type QmpEventOverflowError,
  QmpTimeoutError,
} from '../errors.js';
import { connect } from './client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A fake QEMU whose `x-emit` command emits `count` events before replying. */
async function setup() {
  const server = await fakeQmp((cmd, conn) => {
    if (cmd.execute === 'x-emit') {
      const { name, count, data } = cmd.arguments as {
        name: string;
        count: number;
        data?: unknown;
      };
      for (let i = 0; i < count; i++) conn.event(name, data ?? { i });
      return { return: {} };
    }
    if (cmd.execute === 'x-emit-after') {
      // The reply first, then the events.
      const { name, data } = cmd.arguments as { name: string; data?: unknown };
      conn.send(encodeReturn({}, cmd.id));
      conn.event(name, data);
      return 'no-reply';
    }
    if (cmd.execute === 'x-drop') {
      conn.socket.destroy();
      return 'no-reply';
    }
    return undefined;
  });
  cleanups.push(server.close);
  const qmp = await connect(server.address);
  cleanups.push(async () => {
    await qmp.close();
  });
  const emit = (name: string, count: number, data?: unknown) =>
    qmp.executeUnchecked('x-emit', { name, count, data });
  return { qmp, emit };
}

describe('events', () => {
  it('on() delivers typed events and returns an unsubscribe', async () => {
    const { qmp, emit } = await setup();
    const got: number[] = [];
    const off = qmp.on('RESET', (e) => {
      expect(e.timestamp.seconds).toBeGreaterThan(0);
      got.push(e.data.guest ? 1 : 0);
    });
    await emit('RESET', 2, { guest: true, reason: 'guest-reset' });
    off();
    await emit('RESET', 2, { guest: false, reason: 'host-qmp-system-reset' });
    expect(got).toEqual([1, 1]);
  });

  it('events without a timestamp get -1/-1 (QEMU always sends one; other peers may not)', async () => {
    const server = await fakeQmp((cmd, conn) => {
      if (cmd.execute === 'x-emit') conn.send('{"event": "STOP"}\r\n');
      return cmd.execute === 'x-emit' ? { return: {} } : undefined;
    });
    cleanups.push(server.close);
    const qmp = await connect(server.address);
    const stopped = qmp.expectEvent('STOP');
    await qmp.executeUnchecked('x-emit');
    expect((await stopped.wait()).timestamp).toEqual({ seconds: -1, microseconds: -1 });
    await qmp.close();
  });

  it('a throwing listener does not break the reader', async () => {
    const warnings: string[] = [];
    const server = await fakeQmp((cmd, conn) => {
      if (cmd.execute === 'x-emit') conn.event('STOP');
      return cmd.execute === 'x-emit' ? { return: {} } : undefined;
    });
    cleanups.push(server.close);
    const qmp = await connect(server.address, { logger: { warn: (m) => warnings.push(m) } });
    qmp.on('STOP', () => {
      throw new Error('boom');
    });
    await qmp.executeUnchecked('x-emit');
    expect(await qmp.execute('query-status')).toMatchObject({ running: true });
    expect(warnings.join()).toMatch(/listener threw for STOP/);
    await qmp.close();
  });

  it('iterators filter by names and predicate', async () => {
    const { qmp, emit } = await setup();
    const stream = qmp.events({
      names: ['JOB_STATUS_CHANGE'],
      filter: (e) => e.data.id === 'mine',
    });
    await emit('STOP', 3);
    await emit('JOB_STATUS_CHANGE', 1, { id: 'other', status: 'running' });
    await emit('JOB_STATUS_CHANGE', 2, { id: 'mine', status: 'running' });
    expect(stream.buffered).toBe(2);
    const first = await stream.next();
    expect(first.value).toMatchObject({ event: 'JOB_STATUS_CHANGE', data: { id: 'mine' } });
    await stream.return();
    expect((await stream.next()).done).toBe(true);
  });

  it('a slow consumer never blocks the reader; overflow is an error by default', async () => {
    const { qmp, emit } = await setup();
    const stream = qmp.events({ capacity: 100 });
    await emit('STOP', 150);
    // The connection kept going while nobody consumed.
    expect(await qmp.execute('query-status')).toMatchObject({ running: true });
    let n = 0;
    const error = await (async () => {
      for await (const _ of stream) n++;
    })().catch((e: unknown) => e);
    expect(n).toBe(100);
    expect(isQmpEventOverflowError(error)).toBe(true);
    expect((error as QmpEventOverflowError).dropped).toBe(1);
  });

  it('drop-oldest keeps the newest events and counts what was dropped', async () => {
    const { qmp, emit } = await setup();
    const overflows: number[] = [];
    const stream = qmp.events({
      capacity: 10,
      overflow: 'drop-oldest',
      onOverflow: (d) => overflows.push(d),
    });
    await emit('RESET', 25, undefined);
    expect(stream.dropped).toBe(15);
    expect(stream.buffered).toBe(10);
    expect(overflows.at(-1)).toBe(15);
    const first = await stream.next();
    expect((first.value as { data: { i: number } }).data.i).toBe(15);
    await stream.return();
  });

  it('an abort signal ends iteration with its reason', async () => {
    const { qmp } = await setup();
    const controller = new AbortController();
    const stream = qmp.events({ signal: controller.signal });
    const next = stream.next();
    controller.abort(new Error('enough'));
    await expect(next).rejects.toThrow('enough');
    // with events buffered, abort still ends it at once
    const c2 = new AbortController();
    const buffered = qmp.events({ signal: c2.signal });
    await qmp.executeUnchecked('x-emit', { name: 'STOP', count: 3 });
    expect(buffered.buffered).toBe(3);
    c2.abort(new Error('now'));
    await expect(buffered.next()).rejects.toThrow('now');
    expect((await buffered.next()).done).toBe(true);
  });

  it('iterators end and expectations reject when the connection drops', async () => {
    const { qmp } = await setup();
    const stream = qmp.events();
    const pending = stream.next();
    const expectation = qmp.expectEvent('SHUTDOWN');
    const waiting = expectation.wait();
    await qmp.executeUnchecked('x-drop').catch(() => undefined);
    expect(await pending).toEqual({ value: undefined, done: true });
    await expect(waiting).rejects.toBeInstanceOf(QmpDisconnectedError);
    const late = qmp.events();
    expect((await late.next()).done).toBe(true);
  });

  it('expectEvent catches an event that arrives before the reply', async () => {
    const { qmp, emit } = await setup();
    const expectation = qmp.expectEvent(['STOP', 'RESUME'], (e) => e.event === 'RESUME');
    await emit('RESUME', 1); // event is sent before the reply
    expect(expectation.received).toBe(true);
    const e = await expectation.wait({ timeout: 10 });
    expect(e.event).toBe('RESUME');
  });

  it('waitFor armed before the command sees its event, whether it comes before or after the reply', async () => {
    const { qmp, emit } = await setup();
    const data = { guest: true, reason: 'guest-reset' } as const;
    // Armed before sending; the event follows the reply.
    const after = qmp.waitFor('RESET', (e) => e.data.reason === 'guest-reset');
    await qmp.executeUnchecked('x-emit-after', { name: 'RESET', data });
    expect((await after).data).toEqual(data);
    // Armed before sending; the event precedes the reply.
    const before = qmp.waitFor('RESET', (e) => e.data.reason === 'guest-reset');
    await emit('RESET', 1, data);
    expect((await before).data).toEqual(data);
  });

  it('the documented pattern works when QEMU sends the event before the reply; the wrong order misses it', async () => {
    const wire: string[] = [];
    const server = await fakeQmp((cmd, conn) => {
      if (cmd.execute !== 'stop') return undefined;
      conn.event('STOP'); // like QEMU: STOP is written before stop's return
      return { return: {} };
    });
    cleanups.push(server.close);
    const qmp = await connect(server.address);
    cleanups.push(async () => void (await qmp.close()));
    qmp.on('STOP', () => wire.push('event'));
    // README: arm, send, then wait.
    const stopped = qmp.expectEvent('STOP');
    await qmp.execute('stop').then(() => wire.push('reply'));
    expect(wire).toEqual(['event', 'reply']); // the event really came first
    expect((await stopped.wait()).event).toBe('STOP');
    // The wrong order: waiting after the reply starts too late; that STOP is gone.
    const controller = new AbortController();
    await qmp.execute('stop');
    const late = qmp.waitFor('STOP', undefined, { signal: controller.signal });
    await qmp.execute('query-status'); // a round trip: anything QEMU sent before has arrived
    controller.abort(new Error('never saw it'));
    await expect(late).rejects.toThrow('never saw it');
  });

  it('executeAndWait arms the wait before sending: an event ahead of the reply is caught', async () => {
    const server = await fakeQmp((cmd, conn) => {
      if (cmd.execute === 'stop') {
        conn.event('STOP'); // ahead of the reply, like QEMU
        return { return: {} };
      }
      if (cmd.execute === 'device_del') {
        const { id } = cmd.arguments as { id: string };
        if (id === 'missing') return { error: ['DeviceNotFound', `Device '${id}' not found`] };
        conn.send(encodeReturn({}, cmd.id)); // the reply first, then the events
        conn.event('DEVICE_DELETED', { device: 'other', path: '/machine/peripheral/other' });
        conn.event('DEVICE_DELETED', { device: id, path: `/machine/peripheral/${id}` });
        return 'no-reply';
      }
      return undefined;
    });
    cleanups.push(server.close);
    const qmp = await connect(server.address);
    cleanups.push(async () => void (await qmp.close()));

    const stopped = await qmp.executeAndWait({ event: 'STOP', timeout: 1_000 }, 'stop');
    expect(stopped.event.event).toBe('STOP');
    expect(stopped.result).toEqual({});

    const deleted = await qmp.executeAndWait(
      { event: 'DEVICE_DELETED', where: (e) => e.data.device === 'disk1', timeout: 1_000 },
      'device_del',
      { id: 'disk1' },
    );
    expect(deleted.event.data).toEqual({ device: 'disk1', path: '/machine/peripheral/disk1' });

    // A failing command throws its own error; no wait is left armed.
    const failed = await qmp
      .executeAndWait({ event: 'DEVICE_DELETED' }, 'device_del', { id: 'missing' })
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ errorClass: 'DeviceNotFound' });
    // A wait that never sees its event ends at its timeout, naming the event.
    const never = await qmp
      .executeAndWait({ event: 'POWERDOWN', timeout: 20 }, 'stop')
      .catch((e: unknown) => e);
    expect(never).toBeInstanceOf(QmpTimeoutError);
  });

  it('waitFor times out with QmpTimeoutError naming the event', async () => {
    const { qmp } = await setup();
    const error = await qmp
      .waitFor('POWERDOWN', undefined, { timeout: 20 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect((error as QmpTimeoutError).operation).toBe('POWERDOWN');
    const controller = new AbortController();
    const p = qmp.waitFor('POWERDOWN', undefined, { signal: controller.signal });
    controller.abort(new Error('stop waiting'));
    await expect(p).rejects.toThrow('stop waiting');
  });
});
