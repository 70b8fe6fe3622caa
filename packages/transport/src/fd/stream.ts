import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { QmpStreamError, QmpTimeoutError } from '../errors.js';

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

/** Bytes received but not yet written before the socket is paused (backpressure). */
const HIGH_WATER = 16 * 1024 * 1024;
/** Received chunks are handed to the worker in batches of at least this many bytes. */
const POST_BATCH = 1024 * 1024;
/**
 * A background `fdatasync` after every this many bytes written (one at a time): the final
 * fsync then has little left to flush (bench:sink, 1 GiB: ~0.07 s after MIGRATION
 * completed instead of ~0.37 s). Whole saves with 16 MiB, 64 MiB and none differed by
 * less than the run-to-run noise (three runs, medians of 7–9); 64 MiB syncs least often.
 */
const SYNC_EVERY = 64 * 1024 * 1024;

/**
 * The worker's source, run with `eval: true` so it resolves the same way from the TS
 * sources (tsx, vitest) and from the built `dist` (no second module file to locate).
 * Per batch it hashes every chunk in arrival order, then writes them with `writevSync`
 * (at most IOV_MAX buffers per call, short writes finished) on the worker itself — going
 * through libuv's thread pool instead measured slower — and acknowledges the bytes. Every
 * `syncEvery` bytes it starts an `fdatasync` that runs while it keeps writing. After
 * `end` it waits for that, fsyncs the file and reports the digest. An fs error is posted
 * back with its code.
 */
let workerSource = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const hash = createHash('sha256');
let fd = -1;
let syncEvery = 0;
let sinceSync = 0;
let syncing = null;
let failed = false;
const fail = (e) => {
  if (failed) return;
  failed = true;
  parentPort.postMessage({ type: 'error', error: {
    message: String((e && e.message) || e), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall,
  } });
};
const writeAll = (chunks) => {
  for (let i = 0; i < chunks.length; i += 1024) {
    const batch = chunks.slice(i, i + 1024);
    let left = 0;
    for (const b of batch) left += b.length;
    for (;;) {
      let n = fs.writevSync(fd, batch);
      left -= n;
      if (left <= 0) break;
      while (n >= batch[0].length) { n -= batch[0].length; batch.shift(); }
      if (n > 0) batch[0] = batch[0].subarray(n);
    }
  }
};
parentPort.on('message', (m) => {
  if (failed) return;
  try {
    if (m.type === 'init') {
      fd = m.fd;
      syncEvery = m.syncEvery;
    } else if (m.type === 'data') {
      let total = 0;
      for (const c of m.chunks) { hash.update(c); total += c.length; }
      writeAll(m.chunks);
      parentPort.postMessage({ type: 'written', bytes: total });
      sinceSync += total;
      if (syncEvery > 0 && sinceSync >= syncEvery && syncing === null) {
        sinceSync = 0;
        syncing = new Promise((resolve) => fs.fdatasync(fd, (err) => {
          syncing = null;
          if (err) fail(err);
          resolve();
        }));
      }
    } else if (m.type === 'end') {
      Promise.resolve(syncing).then(() => {
        if (failed) return;
        try {
          fs.fsyncSync(fd);
          parentPort.postMessage({ type: 'done', sha256: hash.digest('hex') });
        } catch (e) {
          fail(e);
        }
      });
    }
  } catch (e) {
    fail(e);
  }
});
`;

/** For tests: replace the worker's source (returns the previous one). */
export function setStreamSinkWorkerSourceForTests(source: string): string {
  const previous = workerSource;
  workerSource = source;
  return previous;
}

interface WorkerFsError {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
}

type WorkerMessage =
  | { type: 'written'; bytes: number }
  | { type: 'done'; sha256: string }
  | { type: 'error'; error: WorkerFsError };

export async function createStreamSink(options: StreamSinkOptions): Promise<StreamSink> {
  return createTunedStreamSink(options, {});
}

/** Knobs bench:sink compares; not part of the public surface. */
export interface StreamSinkTuning {
  /** Pause the socket when this many bytes are received but not yet written. */
  readonly highWater?: number;
  /** A background `fdatasync` after every this many bytes written; 0: never. */
  readonly syncEvery?: number;
}

export async function createTunedStreamSink(
  options: StreamSinkOptions,
  tuning: StreamSinkTuning,
): Promise<StreamSink> {
  const highWater = tuning.highWater ?? HIGH_WATER;
  const dir = await mkdtemp(join(options.socketDir ?? tmpdir(), 'qmpkit-sink-'));
  const socketPath = join(dir, 'stream.sock');
  const partial = `${options.file}.partial`;
  const server = net.createServer();
  let bytes = 0;
  let finished = false;
  let conn: net.Socket | undefined;
  let handle: FileHandle | undefined;
  let worker: Worker | undefined;
  let fail: (reason: unknown) => void = () => {};
  const timers: ReturnType<typeof setTimeout>[] = [];

  const done = new Promise<StreamResult>((resolve, reject) => {
    const cleanup = async (): Promise<void> => {
      for (const t of timers) clearTimeout(t);
      options.signal?.removeEventListener('abort', onAbort);
      server.close();
      await worker?.terminate();
      await rm(dir, { recursive: true, force: true });
    };
    fail = (reason: unknown) => {
      if (finished) return;
      finished = true;
      conn?.destroy();
      void (async () => {
        // The worker writes through the fd: stop it before closing the fd and removing
        // the file, so nothing is written after the failure. A terminated worker exits only
        // after its pending fs requests completed (Node drains them in the worker's
        // cleanup), so the fd number cannot be reused under a late write.
        await worker?.terminate();
        // Already failing with `reason`; the worker is gone, so a close error cannot hide a lost
        // write.
        await handle?.close().catch(() => {});
        if (!options.keepPartial) await rm(partial, { force: true });
        await cleanup();
        reject(reason);
      })();
    };
    const onAbort = (): void => fail(options.signal?.reason ?? new Error('aborted'));

    // Hashing and writing run on a worker thread: the main thread only receives and
    // forwards chunks (their ArrayBuffers transferred, not copied), so SHA-256 runs in
    // parallel with reading the socket instead of after it.
    const w = new Worker(workerSource, { eval: true });
    worker = w;
    w.on('error', (error) =>
      fail(new QmpStreamError(options.file, 'the worker thread failed', { cause: error })),
    );
    w.on('messageerror', (error) =>
      fail(new QmpStreamError(options.file, 'a worker message failed', { cause: error })),
    );
    w.on('exit', (code) => {
      if (!finished)
        fail(new QmpStreamError(options.file, `the worker thread exited early (code ${code})`));
    });

    server.on('connection', (socket) => {
      if (conn !== undefined || finished) {
        socket.destroy();
        return;
      }
      conn = socket;
      server.close(); // accept exactly one
      socket.pause();
      socket.on('error', (error) => fail(error));
      void (async () => {
        let opened: FileHandle;
        try {
          opened = await open(partial, 'w', 0o600);
        } catch (error) {
          fail(error);
          return;
        }
        if (finished) {
          // Failed (abort, timeout) while the file was being created.
          // The sink already failed (abort, timeout) with its own error; the empty file is removed
          // next.
          await opened.close().catch(() => {});
          if (!options.keepPartial) await rm(partial, { force: true });
          return;
        }
        handle = opened;
        let pending: Uint8Array[] = [];
        let pendingBytes = 0;
        let inFlight = 0; // received, not yet written
        let scheduled = false;
        let ended = false;
        const post = (): void => {
          scheduled = false;
          if (pending.length === 0 || finished) return;
          const chunks = pending;
          const transfer: ArrayBuffer[] = [];
          for (let i = 0; i < chunks.length; i++) {
            const c = chunks[i] as Uint8Array;
            // A chunk that owns its whole ArrayBuffer is moved; anything sharing one
            // (e.g. Node's small-buffer pool) is copied first.
            if (
              c.byteOffset === 0 &&
              c.buffer.byteLength === c.byteLength &&
              !transfer.includes(c.buffer as ArrayBuffer)
            )
              transfer.push(c.buffer as ArrayBuffer);
            else chunks[i] = new Uint8Array(c);
          }
          pending = [];
          pendingBytes = 0;
          try {
            w.postMessage({ type: 'data', chunks }, transfer);
          } catch {
            // A buffer Node will not let go of (untransferable): send copies instead.
            w.postMessage({ type: 'data', chunks: chunks.map((c) => new Uint8Array(c)) });
          }
        };
        w.on('message', (m: WorkerMessage) => {
          if (finished) return;
          if (m.type === 'written') {
            inFlight -= m.bytes;
            if (!ended && socket.isPaused() && inFlight < highWater / 2) socket.resume();
          } else if (m.type === 'error') {
            fail(
              Object.assign(new Error(m.error.message), {
                code: m.error.code,
                errno: m.error.errno,
                syscall: m.error.syscall,
                path: partial,
              }),
            );
          } else if (m.type === 'done') {
            void (async () => {
              try {
                await handle?.close();
                handle = undefined;
                await rename(partial, options.file);
                await fsyncDir(dirname(options.file));
                if (finished) return;
                finished = true;
                await cleanup();
                resolve({ file: options.file, bytes, sha256: m.sha256 });
              } catch (error) {
                fail(error);
              }
            })();
          }
        });
        w.postMessage({
          type: 'init',
          fd: opened.fd,
          syncEvery: tuning.syncEvery ?? SYNC_EVERY,
        });
        socket.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          inFlight += chunk.length;
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (inFlight >= highWater) socket.pause();
          if (pendingBytes >= POST_BATCH) post();
          else if (!scheduled) {
            scheduled = true;
            setImmediate(post);
          }
        });
        socket.on('end', () => {
          ended = true;
          post();
          if (!finished) w.postMessage({ type: 'end' });
        });
        socket.resume();
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
  // Awaited below once listening; this only keeps an early failure (before that) from going
  // unhandled.
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
    // Only raced against each read below (which rethrows it); unraced after the last read, it must
    // not go unhandled.
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
