import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../__tests__/helpers.js';
import { QmpTimeoutError } from '../errors.js';
import { escapeOptionValue, InheritedFd, InheritedFds } from './inherited.js';
import { createStreamSink, streamFileToSocket } from './stream.js';

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
});
