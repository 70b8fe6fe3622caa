/**
 * Checks of a migration stream file before it is fed to QEMU (which loads a stream cut at
 * the end or with a flipped RAM byte without complaint, and hangs on an empty one).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { SnapshotIntegrityError } from './errors.js';

/** `QEVM` and stream version 3, the first 8 bytes of every QEMU ≥ 1.x migration stream. */
export const STREAM_MAGIC = 0x5145564d;
export const STREAM_VERSION = 3;

export interface ExpectedStream {
  readonly bytes: number;
  readonly sha256: string;
  /** `stat` right after the save; with `auto`, an unchanged file is not hashed again. */
  readonly written?: { readonly ino: number; readonly mtimeMs: number; readonly ctimeMs: number };
}

/** SHA-256 of a file, streamed. */
export async function sha256File(
  file: string,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
    onBytes?.(bytes);
  }
  return hash.digest('hex');
}

/**
 * Verifies size, magic, version and (with `full`) the SHA-256 of a state file. Throws
 * `SnapshotIntegrityError` naming the problem.
 */
export async function verifyStateFile(
  snapshot: string,
  file: string,
  expected: ExpectedStream,
  mode: 'full' | 'auto' | 'quick',
  options: { onBytes?: (bytes: number) => void; signal?: AbortSignal } = {},
): Promise<'sha256' | 'unchanged' | 'header'> {
  let size: number;
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
    size = info.size;
  } catch (cause) {
    throw new SnapshotIntegrityError(
      snapshot,
      file,
      'missing',
      { message: 'the state file is missing' },
      { cause },
    );
  }
  if (size !== expected.bytes)
    throw new SnapshotIntegrityError(snapshot, file, 'size', {
      expected: String(expected.bytes),
      actual: String(size),
      message: `the state file has ${size} bytes, the manifest says ${expected.bytes} (truncated or replaced)`,
    });
  const head = Buffer.alloc(8);
  const handle = await open(file, 'r');
  try {
    await handle.read(head, 0, 8, 0);
  } finally {
    await handle.close();
  }
  const magic = head.readUInt32BE(0);
  if (magic !== STREAM_MAGIC)
    throw new SnapshotIntegrityError(snapshot, file, 'magic', {
      expected: 'QEVM',
      actual: head.subarray(0, 4).toString('latin1'),
      message: 'not a QEMU migration stream (no QEVM magic)',
    });
  const version = head.readUInt32BE(4);
  if (version !== STREAM_VERSION)
    throw new SnapshotIntegrityError(snapshot, file, 'version', {
      expected: String(STREAM_VERSION),
      actual: String(version),
      message: `migration stream version ${version}, expected ${STREAM_VERSION}`,
    });
  if (mode === 'quick') return 'header';
  const w = expected.written;
  if (
    mode === 'auto' &&
    w !== undefined &&
    info.ino === w.ino &&
    info.mtimeMs === w.mtimeMs &&
    info.ctimeMs === w.ctimeMs
  )
    return 'unchanged';
  const sha = await sha256File(file, options.onBytes, options.signal);
  if (sha !== expected.sha256)
    throw new SnapshotIntegrityError(snapshot, file, 'checksum', {
      expected: expected.sha256,
      actual: sha,
      message:
        'SHA-256 of the state file does not match the manifest (the file was modified or damaged)',
    });
  return 'sha256';
}
