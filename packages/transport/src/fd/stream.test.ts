import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../__tests__/helpers.js';
import { isQmpStreamError, QmpStreamError, QmpTimeoutError } from '../errors.js';
import { escapeOptionValue, InheritedFd, InheritedFds } from './inherited.js';
import {
  createStreamSink,
  createTunedStreamSink,
  setStreamSinkWorkerSourceForTests,
  streamFileToSocket,
} from './stream.js';

const tmp = tempDir();
afterAll(() => tmp.remove());

describe('InheritedFds', () => {
  it('allocates child fds from 3 and yields matching argv fragments', () => {
    const fds = new InheritedFds();
    const qmp = fds.socketpair();
    const file = fds.openFile(path.join(tmp.dir, 'a.bin'), 'w');
    const serial = fds.socketpair();
    expect(qmp.fd).toBe(3);
    expect(file.fd).toBe(4);
    expect(serial.fd).toBe(5);
    expect(fds.stdio).toEqual(['ignore', 'pipe', 'pipe', 'pipe', file.parentFd, 'pipe']);
    expect(qmp.monitorArgs()).toEqual([
      '-chardev',
      'socket,id=qmp,fd=3',
      '-mon',
      'chardev=qmp,mode=control',
    ]);
    expect(serial.chardevArgs('ser0')).toEqual(['-chardev', 'socket,id=ser0,fd=5']);
    expect(file.uri).toBe('fd:4');
    expect(file.addFdArgs(2, 'a,b')).toEqual(['-add-fd', 'fd=4,set=2,opaque=a,,b']);
    expect(InheritedFd.fdsetPath(2)).toBe('/dev/fdset/2');
    expect(() => qmp.chardevArgs('bad id,x=1')).toThrow(TypeError);
    expect(escapeOptionValue('x,y')).toBe('x,,y');
    fds.closeParentCopies();
  });
});

describe('stream sink and source', () => {
  it('keeps order and hash when chunks arrive faster than the file is written (batched writes)', async () => {
    const file = path.join(tmp.dir, 'batched.bin');
    const sink = await createStreamSink({ file });
    const socket = net.createConnection({ path: sink.path });
    await new Promise((r) => socket.once('connect', r));
    const hash = createHash('sha256');
    let total = 0;
    for (let i = 0; i < 600; i++) {
      // Odd sizes so chunk boundaries never line up with the batches.
      const chunk = Buffer.alloc(1 + ((i * 7919) % 120_000), i % 251);
      hash.update(chunk);
      total += chunk.length;
      if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
    }
    socket.end();
    const result = await sink.done;
    expect(result.bytes).toBe(total);
    expect(result.sha256).toBe(hash.digest('hex'));
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(result.sha256);
  });

  it('the sink accepts exactly one connection', async () => {
    const file = path.join(tmp.dir, 'one.bin');
    const sink = await createStreamSink({ file });
    const first = net.createConnection({ path: sink.path });
    await new Promise((r) => first.once('connect', r));
    const second = await new Promise<string>((resolve) => {
      const s = net.createConnection({ path: sink.path });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('close', () => resolve('closed'));
    });
    expect(['closed', 'ENOENT', 'ECONNREFUSED', 'ECONNRESET']).toContain(second);
    first.end('abc');
    const result = await sink.done;
    expect(result).toMatchObject({ bytes: 3, file });
    expect(result.sha256).toBe(createHash('sha256').update('abc').digest('hex'));
    expect(readFileSync(file, 'utf8')).toBe('abc');
  });

  it('the sink can be aborted and times out waiting for a peer', async () => {
    const sink = await createStreamSink({ file: path.join(tmp.dir, 'aborted.bin') });
    sink.abort(new Error('not needed'));
    await expect(sink.done).rejects.toThrow('not needed');
    const lonely = await createStreamSink({
      file: path.join(tmp.dir, 'lonely.bin'),
      acceptTimeout: 30,
    });
    await expect(lonely.done).rejects.toBeInstanceOf(QmpTimeoutError);
    expect(existsSync(path.join(tmp.dir, 'lonely.bin.partial'))).toBe(false);
  });

  it('streams a file into a socket someone listens on, with sha256', async () => {
    const file = path.join(tmp.dir, 'src.bin');
    const payload = Buffer.alloc(3 << 20, 7);
    await import('node:fs/promises').then((fs) => fs.writeFile(file, payload));
    const socketPath = path.join(tmp.dir, 'listen.sock');
    const received: Buffer[] = [];
    const server = net.createServer((s) => s.on('data', (c: Buffer) => received.push(c)));
    // Listen late: the source retries ENOENT until the listener exists.
    setTimeout(() => server.listen(socketPath), 50);
    const result = await streamFileToSocket({ socketPath, file });
    await new Promise((r) => setTimeout(r, 20));
    server.close();
    expect(result.bytes).toBe(payload.length);
    expect(result.sha256).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(Buffer.concat(received).equals(payload)).toBe(true);
  });

  /** Connects, writes `total` bytes in 64 KiB pieces without waiting, resolves on connect. */
  async function feed(sinkPath: string, total: number): Promise<net.Socket> {
    const socket = net.createConnection({ path: sinkPath });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    for (let sent = 0; sent < total; sent += 1 << 16) socket.write(Buffer.alloc(1 << 16, 3));
    return socket;
  }

  async function until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise((r) => setTimeout(r, 5));
  }

  it('a worker thread that dies fails the sink with QmpStreamError and leaves no .partial', async () => {
    const previous = setStreamSinkWorkerSourceForTests(`
      require('node:worker_threads').parentPort.on('message', (m) => {
        if (m.type === 'data') throw new Error('hash exploded');
      });
    `);
    try {
      const file = path.join(tmp.dir, 'worker-died.bin');
      const sink = await createStreamSink({ file });
      const socket = await feed(sink.path, 1 << 20);
      const error = await sink.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      socket.destroy();
      expect(error).toBeInstanceOf(QmpStreamError);
      expect(isQmpStreamError(error)).toBe(true);
      expect((error as QmpStreamError).file).toBe(file);
      expect(((error as Error).cause as Error).message).toBe('hash exploded');
      expect(existsSync(`${file}.partial`)).toBe(false);
      expect(existsSync(file)).toBe(false);
    } finally {
      setStreamSinkWorkerSourceForTests(previous);
    }
  });

  it('a write error in the worker rejects with the fs error code', async () => {
    const previous = setStreamSinkWorkerSourceForTests(`
      const { parentPort } = require('node:worker_threads');
      parentPort.on('message', (m) => {
        if (m.type === 'data')
          parentPort.postMessage({ type: 'error', error: { message: 'ENOSPC: no space left on device, write', code: 'ENOSPC', errno: -28, syscall: 'write' } });
      });
    `);
    try {
      const file = path.join(tmp.dir, 'enospc.bin');
      const sink = await createStreamSink({ file });
      const socket = await feed(sink.path, 1 << 16);
      await expect(sink.done).rejects.toMatchObject({ code: 'ENOSPC', syscall: 'write' });
      socket.destroy();
      expect(existsSync(`${file}.partial`)).toBe(false);
    } finally {
      setStreamSinkWorkerSourceForTests(previous);
    }
  });

  it('stops reading while the worker has not written what it got (bounded memory), and an abort mid-stream leaves no .partial', async () => {
    // A worker that never acknowledges a write: received bytes must stop near highWater.
    const previous = setStreamSinkWorkerSourceForTests(
      `require('node:worker_threads').parentPort.on('message', () => {});`,
    );
    try {
      const file = path.join(tmp.dir, 'stalled.bin');
      const highWater = 1 << 20;
      const sink = await createTunedStreamSink({ file }, { highWater });
      const socket = await feed(sink.path, 16 << 20);
      await until(() => sink.bytes >= highWater);
      await until(() => existsSync(`${file}.partial`));
      // Give the socket time to deliver more if it were not paused.
      await new Promise((r) => setTimeout(r, 100));
      expect(sink.bytes).toBeLessThan(highWater + (1 << 20));
      sink.abort(new Error('changed my mind'));
      await expect(sink.done).rejects.toThrow('changed my mind');
      socket.destroy();
      expect(existsSync(`${file}.partial`)).toBe(false);
      expect(existsSync(file)).toBe(false);
    } finally {
      setStreamSinkWorkerSourceForTests(previous);
    }
  });

  it('an abort mid-stream with the real worker leaves neither the file nor .partial', async () => {
    const file = path.join(tmp.dir, 'abort-mid.bin');
    const controller = new AbortController();
    const sink = await createStreamSink({ file, signal: controller.signal });
    const socket = await feed(sink.path, 8 << 20);
    await until(() => sink.bytes > 0);
    controller.abort(new Error('user abort'));
    await expect(sink.done).rejects.toThrow('user abort');
    socket.destroy();
    expect(existsSync(`${file}.partial`)).toBe(false);
    expect(existsSync(file)).toBe(false);
  });

  it('a whole-transfer timeout mid-stream is a QmpTimeoutError and keepPartial keeps the bytes', async () => {
    const file = path.join(tmp.dir, 'timeout-mid.bin');
    const sink = await createStreamSink({ file, timeout: 200, keepPartial: true });
    const socket = await feed(sink.path, 1 << 16);
    await expect(sink.done).rejects.toBeInstanceOf(QmpTimeoutError);
    socket.destroy();
    expect(existsSync(`${file}.partial`)).toBe(true);
    expect(existsSync(file)).toBe(false);
  });
});
