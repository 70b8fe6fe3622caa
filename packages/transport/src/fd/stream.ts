import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { QmpTimeoutError } from '../errors.js';

/** What a finished transfer wrote or read. */
export interface StreamResult {
  readonly file: string;
  readonly bytes: number;
  /** Hex SHA-256 of the bytes, computed while streaming. */
  readonly sha256: string;
}

export interface StreamSinkOptions {
  /** Destination; written as `<file>.partial`, fsynced, then renamed over `file`. */
  readonly file: string;
  /** Parent for the private 0700 socket directory (default: the OS temp dir). */
  readonly socketDir?: string;
  /** Fail unless a peer connects within this many ms (default: wait forever). */
  readonly acceptTimeout?: number;
  /** Fail unless the whole transfer ends within this many ms (default: no limit). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
  /** Keep `<file>.partial` when the transfer fails (default: delete it). */
  readonly keepPartial?: boolean;
}

/**
 * A private UNIX socket that accepts exactly one connection and streams everything it
 * receives into a file, e.g. for `migrate uri=unix:<path>`. Further connections are
 * refused. `done` resolves after EOF, fsync and rename.
 */
export interface StreamSink {
  /** The socket path (inside a fresh 0700 directory). */
  readonly path: string;
  /** `unix:<path>`, for `migrate`. */
  readonly uri: string;
  readonly done: Promise<StreamResult>;
  /** Bytes received so far. */
  readonly bytes: number;
  abort(reason?: unknown): void;
}

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

export async function createStreamSink(options: StreamSinkOptions): Promise<StreamSink> {
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

export interface StreamSourceOptions {
  /** The socket to connect to (e.g. where `migrate-incoming uri=unix:<path>` listens). */
  readonly socketPath: string;
  readonly file: string;
  /** Keep retrying ENOENT/ECONNREFUSED for this many ms (default 5000). */
  readonly connectTimeout?: number;
  /** Whole-transfer deadline in ms (default: none). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/**
 * Streams a file into a UNIX socket someone else listens on (e.g. QEMU after
 * `migrate-incoming uri=unix:<path>`), hashing on the fly.
 */
export async function streamFileToSocket(options: StreamSourceOptions): Promise<StreamResult> {
  const deadline = Date.now() + (options.connectTimeout ?? 5000);
  let socket: net.Socket | undefined;
  while (socket === undefined) {
    if (options.signal?.aborted) throw options.signal.reason;
    try {
      socket = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.createConnection({ path: options.socketPath });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const connected = socket;
  const total = (await stat(options.file)).size;
  const handle = await open(options.file, 'r');
  const hash = createHash('sha256');
  let bytes = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = (): void => {
    connected.destroy(
      options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'),
    );
  };
  try {
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeout !== undefined) {
      const ms = options.timeout;
      timer = setTimeout(() => connected.destroy(new QmpTimeoutError('stream source', ms)), ms);
    }
    const failed = new Promise<never>((_, reject) => {
      connected.once('error', reject);
      connected.once('close', () => {
        if (bytes < total) reject(new Error(`peer closed after ${bytes} of ${total} bytes`));
      });
    });
    failed.catch(() => {});
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await Promise.race([
        handle.read(buffer, 0, buffer.length, null),
        failed,
      ]);
      if (bytesRead === 0) break;
      const chunk = Buffer.from(buffer.subarray(0, bytesRead));
      hash.update(chunk);
      bytes += bytesRead;
      if (!connected.write(chunk)) {
        await Promise.race([new Promise((r) => connected.once('drain', r)), failed]);
      }
    }
    await Promise.race([new Promise<void>((r) => connected.end(r)), failed]);
    return { file: options.file, bytes, sha256: hash.digest('hex') };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    await handle.close();
    connected.destroy();
  }
}
