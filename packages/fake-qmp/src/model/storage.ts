import { StorageError } from '../errors.js';

/**
 * Where the fake's image files live. `host` uses the real filesystem (so a test can make
 * images with `qemu-img` and the fake sees them, and images the fake creates are valid
 * qcow2 files real QEMU can open); `memory` keeps files in a map (no disk access at all).
 */

export interface FileInfo {
  readonly size: number;
  /** Bytes allocated on disk (`st_blocks * 512`); equals `size` in memory. */
  readonly allocated: number;
}

export interface Storage {
  readonly kind: 'host' | 'memory';
  stat(path: string): FileInfo | undefined;
  /** Reads up to `length` bytes from `offset` (fewer at end of file). */
  read(path: string, offset: number, length: number): Uint8Array;
  /** Creates or truncates the file to `size` bytes. */
  create(path: string, size: number): void;
  write(path: string, offset: number, data: Uint8Array): void;
  /** Grows or shrinks the file to `size` bytes. */
  resize(path: string, size: number): void;
  /** Why the file cannot be opened (`No such file or directory`), or undefined. */
  openError(path: string): string | undefined;
}

/** Files as sparse byte maps: only written ranges hold memory (no Node: runs in a page). */
export class MemoryStorage implements Storage {
  readonly kind = 'memory' as const;
  private readonly files = new Map<string, { size: number; chunks: Map<number, Uint8Array> }>();
  private static readonly CHUNK = 64 * 1024;

  stat(path: string): FileInfo | undefined {
    const f = this.files.get(path);
    return f ? { size: f.size, allocated: f.chunks.size * MemoryStorage.CHUNK } : undefined;
  }

  read(path: string, offset: number, length: number): Uint8Array {
    const f = this.file(path);
    const n = Math.max(0, Math.min(length, f.size - offset));
    const out = new Uint8Array(n);
    for (let pos = 0; pos < n; ) {
      const abs = offset + pos;
      const index = Math.floor(abs / MemoryStorage.CHUNK);
      const within = abs % MemoryStorage.CHUNK;
      const take = Math.min(MemoryStorage.CHUNK - within, n - pos);
      const chunk = f.chunks.get(index);
      if (chunk) out.set(chunk.subarray(within, within + take), pos);
      pos += take;
    }
    return out;
  }

  create(path: string, size: number): void {
    this.files.set(path, { size, chunks: new Map() });
  }

  write(path: string, offset: number, data: Uint8Array): void {
    const f = this.file(path);
    for (let pos = 0; pos < data.length; ) {
      const abs = offset + pos;
      const index = Math.floor(abs / MemoryStorage.CHUNK);
      const within = abs % MemoryStorage.CHUNK;
      const take = Math.min(MemoryStorage.CHUNK - within, data.length - pos);
      let chunk = f.chunks.get(index);
      if (!chunk) {
        chunk = new Uint8Array(MemoryStorage.CHUNK);
        f.chunks.set(index, chunk);
      }
      chunk.set(data.subarray(pos, pos + take), within);
      pos += take;
    }
    f.size = Math.max(f.size, offset + data.length);
  }

  resize(path: string, size: number): void {
    this.file(path).size = size;
  }

  private file(path: string): { size: number; chunks: Map<number, Uint8Array> } {
    const f = this.files.get(path);
    if (!f) throw new StorageError(path, 'No such file or directory');
    return f;
  }

  openError(path: string): string | undefined {
    return this.files.has(path) ? undefined : 'No such file or directory';
  }
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

// ---- qcow2 -------------------------------------------------------------------------------

export const QCOW2_MAGIC = 0x514649fb;

export interface Qcow2Header {
  readonly version: number;
  readonly size: number;
  readonly clusterBits: number;
  readonly backingFile?: string;
  readonly backingFormat?: string;
}

/** Parses a qcow2 header (enough for image info), or undefined when it is not qcow2. */
export function readQcow2Header(head: Uint8Array): Qcow2Header | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 72 || view.getUint32(0) !== QCOW2_MAGIC) return undefined;
  const version = view.getUint32(4);
  const backingOffset = Number(view.getBigUint64(8));
  const backingSize = view.getUint32(16);
  const clusterBits = view.getUint32(20);
  const size = Number(view.getBigUint64(24));
  const text = (from: number, to: number) => utf8Decoder.decode(head.subarray(from, to));
  let backingFile: string | undefined;
  if (backingOffset > 0 && backingSize > 0 && backingOffset + backingSize <= head.length)
    backingFile = text(backingOffset, backingOffset + backingSize);
  let backingFormat: string | undefined;
  if (version >= 3 && head.length >= 104) {
    const headerLength = view.getUint32(100);
    let pos = headerLength;
    while (pos + 8 <= head.length) {
      const type = view.getUint32(pos);
      const len = view.getUint32(pos + 4);
      if (type === 0) break;
      if (type === 0xe2792aca && pos + 8 + len <= head.length)
        backingFormat = text(pos + 8, pos + 8 + len);
      pos += 8 + Math.ceil(len / 8) * 8;
    }
  }
  return {
    version,
    size,
    clusterBits,
    ...(backingFile !== undefined ? { backingFile } : {}),
    ...(backingFormat !== undefined ? { backingFormat } : {}),
  };
}

/**
 * An empty qcow2 v3 image laid out like QEMU 7.2's `blockdev-create` lays it out: header
 * in cluster 0, refcount table in cluster 1, one refcount block in cluster 2, the L1 table
 * in cluster 3 (written as whole 512-byte sectors). Real QEMU opens these files.
 */
export function createQcow2Image(
  size: number,
  options: { backingFile?: string; backingFormat?: string; clusterBits?: number } = {},
): Uint8Array {
  const clusterBits = options.clusterBits ?? 16;
  const cluster = 1 << clusterBits;
  const l2Entries = cluster / 8;
  const l1Size = Math.max(1, Math.ceil(size / (cluster * l2Entries)));
  const l1Bytes = Math.ceil((l1Size * 8) / 512) * 512;
  const refTable = cluster;
  const refBlock = 2 * cluster;
  const l1Table = 3 * cluster;
  const total = l1Table + l1Bytes;
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer);
  const u32 = (value: number, at: number) => view.setUint32(at, value);
  const u64 = (value: number, at: number) => view.setBigUint64(at, BigInt(value));
  u32(QCOW2_MAGIC, 0);
  u32(3, 4);
  u32(clusterBits, 20);
  u64(size, 24);
  u32(0, 32); // crypt method
  u32(l1Size, 36);
  u64(l1Table, 40);
  u64(refTable, 48);
  u32(1, 56); // refcount table clusters
  u32(0, 60); // snapshots
  u64(0, 64);
  u32(4, 96); // refcount order: 16-bit refcounts
  u32(112, 100); // header length
  buf[104] = 0; // compression type zlib
  let pos = 112;
  if (options.backingFormat !== undefined) {
    const fmt = utf8.encode(options.backingFormat);
    u32(0xe2792aca, pos);
    u32(fmt.length, pos + 4);
    buf.set(fmt, pos + 8);
    pos += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  u32(0, pos); // end of header extensions
  u32(0, pos + 4);
  pos += 8;
  if (options.backingFile !== undefined) {
    const name = utf8.encode(options.backingFile);
    buf.set(name, pos);
    u64(pos, 8);
    u32(name.length, 16);
  }
  u64(refBlock, refTable);
  for (let i = 0; i < 4; i++) view.setUint16(refBlock + i * 2, 1);
  return buf;
}
