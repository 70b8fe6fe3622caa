// The stream sink as it was before the hashing and writing moved to a worker thread (commit c62bc10),
// kept here only so bench:sink can measure it beside the current one in the same run.

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdtemp, open, rename, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { QmpTimeoutError } from '@qmpkit/transport';
import type { StreamResult, StreamSink, StreamSinkOptions } from '@qmpkit/transport/fd';

async function fsyncDir(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still done.
  } finally {
    await handle?.close();
  }
}

/** Bytes queued for the file before the socket is paused (backpressure). */
const HIGH_WATER = 16 * 1024 * 1024;

export async function createOldStreamSink(options: StreamSinkOptions): Promise<StreamSink> {
  const dir = await mkdtemp(join(options.socketDir ?? tmpdir(), 'qmpkit-sink-'));
  const socketPath = join(dir, 'stream.sock');
  const partial = `${options.file}.partial`;
  const server = net.createServer();
  let bytes = 0;
  let finished = false;
  let conn: net.Socket | undefined;
  let handle: FileHandle | undefined;
  let fail: (reason: unknown) => void = () => {};
  const timers: ReturnType<typeof setTimeout>[] = [];

  const done = new Promise<StreamResult>((resolve, reject) => {
    const cleanup = async (): Promise<void> => {
      for (const t of timers) clearTimeout(t);
      options.signal?.removeEventListener('abort', onAbort);
      server.close();
      await rm(dir, { recursive: true, force: true });
    };
    fail = (reason: unknown) => {
      if (finished) return;
      finished = true;
      conn?.destroy();
      void (async () => {
        await handle?.close().catch(() => {});
        if (!options.keepPartial) await rm(partial, { force: true });
        await cleanup();
        reject(reason);
      })();
    };
    const onAbort = (): void => fail(options.signal?.reason ?? new Error('aborted'));

    server.on('connection', (socket) => {
      if (conn !== undefined || finished) {
        socket.destroy();
        return;
      }
      conn = socket;
      server.close(); // accept exactly one
      const hash = createHash('sha256');
      socket.pause();
      void (async () => {
        try {
          handle = await open(partial, 'w', 0o600);
          const h = handle;
          // Chunks queue up while one writev is outstanding; the socket is paused only
          // when the queue holds more than HIGH_WATER bytes (one syscall per batch instead
          // of one write and a pause/resume per 64 KiB chunk).
          let queue: Buffer[] = [];
          let queued = 0;
          let writing: Promise<void> = Promise.resolve();
          let busy = false;
          const flush = (): void => {
            if (busy || queue.length === 0 || finished) return;
            busy = true;
            const batch = queue;
            queue = [];
            queued = 0;
            writing = (async () => {
              try {
                let offset = 0;
                while (offset < batch.length) {
                  const slice = batch.slice(offset, offset + 512);
                  let written = (await h.writev(slice)).bytesWritten;
                  // Short writes are rare on regular files; finish them chunk by chunk.
                  for (const b of slice) {
                    if (written >= b.length) {
                      written -= b.length;
                      continue;
                    }
                    await h.write(b.subarray(written));
                    written = 0;
                  }
                  offset += slice.length;
                }
              } catch (error) {
                fail(error);
                return;
              } finally {
                busy = false;
              }
              if (!finished) {
                if (socket.isPaused() && queued < HIGH_WATER) socket.resume();
                flush();
              }
            })();
          };
          socket.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            hash.update(chunk);
            queue.push(chunk);
            queued += chunk.length;
            if (queued >= HIGH_WATER) socket.pause();
            flush();
          });
          socket.on('error', (error) => fail(error));
          socket.on('end', () => {
            const drained = async (): Promise<void> => {
              while (busy || queue.length > 0) {
                flush();
                await writing;
              }
            };
            void drained().then(async () => {
              if (finished) return;
              try {
                await h.sync();
                await h.close();
                handle = undefined;
                await rename(partial, options.file);
                await fsyncDir(dirname(options.file));
                finished = true;
                await cleanup();
                resolve({ file: options.file, bytes, sha256: hash.digest('hex') });
              } catch (error) {
                fail(error);
              }
            });
          });
          socket.resume();
        } catch (error) {
          fail(error);
        }
      })();
    });
    server.on('error', (error) => fail(error));
    if (options.signal) {
      if (options.signal.aborted) queueMicrotask(onAbort);
      else options.signal.addEventListener('abort', onAbort, { once: true });
    }
    if (options.acceptTimeout !== undefined) {
      const ms = options.acceptTimeout;
      timers.push(
        setTimeout(() => {
          if (conn === undefined)
            fail(
              new QmpTimeoutError(
                'stream sink accept',
                ms,
                `nobody connected to ${socketPath} within ${ms} ms`,
              ),
            );
        }, ms),
      );
    }
    if (options.timeout !== undefined) {
      const ms = options.timeout;
      timers.push(setTimeout(() => fail(new QmpTimeoutError('stream sink', ms)), ms));
    }
  });
  done.catch(() => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    path: socketPath,
    uri: `unix:${socketPath}`,
    done,
    get bytes() {
      return bytes;
    },
    abort: (reason?: unknown) => fail(reason ?? new Error('aborted')),
  };
}
