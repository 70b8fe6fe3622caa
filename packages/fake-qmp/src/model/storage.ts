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
  read(path: string, offset: number, length: number): Buffer;
  /** Creates or truncates the file to `size` bytes. */
  create(path: string, size: number): void;
  write(path: string, offset: number, data: Buffer): void;
  /** Grows or shrinks the file to `size` bytes. */
  resize(path: string, size: number): void;
  /** Why the file cannot be opened (`No such file or directory`), or undefined. */
  openError(path: string): string | undefined;
}

/** Files as sparse byte maps: only written ranges hold memory. */
export class MemoryStorage implements Storage {
  readonly kind = 'memory' as const;
  private readonly files = new Map<string, { size: number; chunks: Map<number, Buffer> }>();
  private static readonly CHUNK = 64 * 1024;

  stat(path: string): FileInfo | undefined {
    const f = this.files.get(path);
    return f ? { size: f.size, allocated: f.chunks.size * MemoryStorage.CHUNK } : undefined;
  }

  read(path: string, offset: number, length: number): Buffer {
    const f = this.files.get(path);
    if (!f) throw new Error(`${path}: No such file or directory`);
    const n = Math.max(0, Math.min(length, f.size - offset));
    const out = Buffer.alloc(n);
    for (let pos = 0; pos < n; ) {
      const abs = offset + pos;
      const index = Math.floor(abs / MemoryStorage.CHUNK);
      const within = abs % MemoryStorage.CHUNK;
      const take = Math.min(MemoryStorage.CHUNK - within, n - pos);
      f.chunks.get(index)?.copy(out, pos, within, within + take);
      pos += take;
    }
    return out;
  }

  create(path: string, size: number): void {
    this.files.set(path, { size, chunks: new Map() });
  }

  write(path: string, offset: number, data: Buffer): void {
    const f = this.files.get(path);
    if (!f) throw new Error(`${path}: No such file or directory`);
    for (let pos = 0; pos < data.length; ) {
      const abs = offset + pos;
      const index = Math.floor(abs / MemoryStorage.CHUNK);
      const within = abs % MemoryStorage.CHUNK;
      const take = Math.min(MemoryStorage.CHUNK - within, data.length - pos);
      let chunk = f.chunks.get(index);
      if (!chunk) {
        chunk = Buffer.alloc(MemoryStorage.CHUNK);
        f.chunks.set(index, chunk);
      }
      data.copy(chunk, within, pos, pos + take);
      pos += take;
    }
    f.size = Math.max(f.size, offset + data.length);
  }

  resize(path: string, size: number): void {
    const f = this.files.get(path);
    if (!f) throw new Error(`${path}: No such file or directory`);
    f.size = size;
  }

  openError(path: string): string | undefined {
    return this.files.has(path) ? undefined : 'No such file or directory';
  }
}

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
export function readQcow2Header(head: Buffer): Qcow2Header | undefined {
  if (head.length < 72 || head.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
  const version = head.readUInt32BE(4);
  const backingOffset = Number(head.readBigUInt64BE(8));
  const backingSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  const size = Number(head.readBigUInt64BE(24));
  let backingFile: string | undefined;
  if (backingOffset > 0 && backingSize > 0 && backingOffset + backingSize <= head.length)
    backingFile = head.toString('utf8', backingOffset, backingOffset + backingSize);
  let backingFormat: string | undefined;
  if (version >= 3 && head.length >= 104) {
    const headerLength = head.readUInt32BE(100);
    let pos = headerLength;
    while (pos + 8 <= head.length) {
      const type = head.readUInt32BE(pos);
      const len = head.readUInt32BE(pos + 4);
      if (type === 0) break;
      if (type === 0xe2792aca && pos + 8 + len <= head.length)
        backingFormat = head.toString('utf8', pos + 8, pos + 8 + len);
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
): Buffer {
  const clusterBits = options.clusterBits ?? 16;
  const cluster = 1 << clusterBits;
  const l2Entries = cluster / 8;
  const l1Size = Math.max(1, Math.ceil(size / (cluster * l2Entries)));
  const l1Bytes = Math.ceil((l1Size * 8) / 512) * 512;
  const refTable = cluster;
  const refBlock = 2 * cluster;
  const l1Table = 3 * cluster;
  const total = l1Table + l1Bytes;
  const buf = Buffer.alloc(total);
  buf.writeUInt32BE(QCOW2_MAGIC, 0);
  buf.writeUInt32BE(3, 4);
  buf.writeUInt32BE(clusterBits, 20);
  buf.writeBigUInt64BE(BigInt(size), 24);
  buf.writeUInt32BE(0, 32); // crypt method
  buf.writeUInt32BE(l1Size, 36);
  buf.writeBigUInt64BE(BigInt(l1Table), 40);
  buf.writeBigUInt64BE(BigInt(refTable), 48);
  buf.writeUInt32BE(1, 56); // refcount table clusters
  buf.writeUInt32BE(0, 60); // snapshots
  buf.writeBigUInt64BE(0n, 64);
  buf.writeUInt32BE(4, 96); // refcount order: 16-bit refcounts
  buf.writeUInt32BE(112, 100); // header length
  buf[104] = 0; // compression type zlib
  let pos = 112;
  if (options.backingFormat !== undefined) {
    const fmt = Buffer.from(options.backingFormat, 'utf8');
    buf.writeUInt32BE(0xe2792aca, pos);
    buf.writeUInt32BE(fmt.length, pos + 4);
    fmt.copy(buf, pos + 8);
    pos += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  buf.writeUInt32BE(0, pos); // end of header extensions
  buf.writeUInt32BE(0, pos + 4);
  pos += 8;
  if (options.backingFile !== undefined) {
    const name = Buffer.from(options.backingFile, 'utf8');
    name.copy(buf, pos);
    buf.writeBigUInt64BE(BigInt(pos), 8);
    buf.writeUInt32BE(name.length, 16);
  }
  buf.writeBigUInt64BE(BigInt(refBlock), refTable);
  for (let i = 0; i < 4; i++) buf.writeUInt16BE(1, refBlock + i * 2);
  return buf;
}
