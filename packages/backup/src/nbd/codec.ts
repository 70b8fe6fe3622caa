/**
 * The NBD wire format, the part a pull-mode backup needs (fixed newstyle handshake,
 * `NBD_OPT_STARTTLS`, `NBD_OPT_STRUCTURED_REPLY`, `NBD_OPT_SET_META_CONTEXT`, `NBD_OPT_GO`, and the transmission
 * commands READ, WRITE, WRITE_ZEROES, FLUSH, BLOCK_STATUS, DISC), after the protocol document
 * of the NBD project. Pure: encoders return buffers, `ByteQueue` parses what arrives. No I/O.
 */
import { NbdProtocolError } from './errors.js';

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const FLAG_FIXED_NEWSTYLE = 1;
export const FLAG_NO_ZEROES = 2;

export const OPT = {
  ABORT: 2,
  STARTTLS: 5,
  GO: 7,
  STRUCTURED_REPLY: 8,
  SET_META_CONTEXT: 10,
} as const;
export const REP = { ACK: 1, INFO: 3, META_CONTEXT: 4 } as const;
export const INFO_EXPORT = 0;
export const REP_ERROR_BIT = 0x8000_0000;

export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;
/** Transmission flags (from the export info). */
export const TFLAG = { READ_ONLY: 1 << 1, SEND_FLUSH: 1 << 2, SEND_WRITE_ZEROES: 1 << 6 } as const;

export const CHUNK = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;
export const CHUNK_FLAG_DONE = 1;

/** Block status flags of `base:allocation`. */
export const STATE_HOLE = 1;
export const STATE_ZERO = 2;
/** Block status flag of `qemu:dirty-bitmap:NAME`. */
export const STATE_DIRTY = 1;

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(flags);
  return b;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(data.length, 12);
  return Buffer.concat([b, data]);
}

function lengthPrefixed(text: string): Buffer {
  const s = Buffer.from(text, 'utf8');
  const b = Buffer.alloc(4);
  b.writeUInt32BE(s.length);
  return Buffer.concat([b, s]);
}

/** `NBD_OPT_GO` for `name`, asking for no extra info (the export info always comes). */
export function encodeGo(name: string): Buffer {
  return encodeOption(OPT.GO, Buffer.concat([lengthPrefixed(name), Buffer.alloc(2)]));
}

export function encodeSetMetaContext(name: string, queries: readonly string[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length);
  return encodeOption(
    OPT.SET_META_CONTEXT,
    Buffer.concat([lengthPrefixed(name), count, ...queries.map(lengthPrefixed)]),
  );
}

export function encodeRequest(
  type: number,
  cookie: bigint,
  offset: number,
  length: number,
  flags = 0,
): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/**
 * Bytes received and not yet parsed. `need(n)` says whether `n` bytes are there; `take(n)`
 * removes them. The client waits for data between calls; the queue itself never blocks.
 */
export class ByteQueue {
  #chunks: (Buffer | undefined)[] = [];
  /** Index of the first chunk still queued. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /**
   * Removes the first `n` bytes. Copies only when they span several chunks, and then only
   * those `n` bytes: the rest stays queued as it came (no re-concatenation of the queue).
   */
  take(n: number): Buffer {
    if (n > this.#length)
      throw new NbdProtocolError(`internal: take(${n}) with ${this.#length} bytes queued`);
    const first = this.#chunks[this.#head];
    if (first !== undefined && first.length >= n) {
      this.#consume(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    this.takeInto(out, 0, n);
    return out;
  }

  /** Moves up to `n` queued bytes into `target` at `at`; returns how many it moved. */
  takeInto(target: Buffer, at: number, n: number): number {
    let done = 0;
    while (done < n) {
      const chunk = this.#chunks[this.#head];
      if (chunk === undefined) break;
      const count = Math.min(chunk.length, n - done);
      chunk.copy(target, at + done, 0, count);
      this.#consume(count);
      done += count;
    }
    return done;
  }

  /** Drops `n` bytes from the head (never more than the first chunk holds). */
  #consume(n: number): void {
    const chunk = this.#chunks[this.#head];
    if (chunk === undefined) return;
    this.#length -= n;
    if (n < chunk.length) {
      this.#chunks[this.#head] = chunk.subarray(n);
      return;
    }
    this.#chunks[this.#head] = undefined;
    this.#head++;
    // Compact now and then instead of shifting the array on every chunk.
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** One option reply header (`length` bytes of data follow). */
export interface OptionReply {
  readonly option: number;
  readonly type: number;
  readonly length: number;
}

export function decodeOptionReply(b: Buffer): OptionReply {
  const magic = b.readBigUInt64BE(0);
  if (magic !== REPLY_MAGIC)
    throw new NbdProtocolError(`bad option reply magic 0x${magic.toString(16)}`);
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

/** A transmission reply header: simple (16 bytes) or structured (20 bytes). */
export type ReplyHeader =
  | { readonly kind: 'simple'; readonly error: number; readonly cookie: bigint }
  | {
      readonly kind: 'structured';
      readonly flags: number;
      readonly type: number;
      readonly cookie: bigint;
      readonly length: number;
    };

/** Bytes of the header after the 4-byte magic. */
export function replyHeaderRest(magic: number): number {
  if (magic === SIMPLE_REPLY_MAGIC) return 12;
  if (magic === STRUCTURED_REPLY_MAGIC) return 16;
  throw new NbdProtocolError(`bad reply magic 0x${magic.toString(16)}`);
}

export function decodeReplyHeader(magic: number, rest: Buffer): ReplyHeader {
  if (magic === SIMPLE_REPLY_MAGIC)
    return { kind: 'simple', error: rest.readUInt32BE(0), cookie: rest.readBigUInt64BE(4) };
  return {
    kind: 'structured',
    flags: rest.readUInt16BE(0),
    type: rest.readUInt16BE(2),
    cookie: rest.readBigUInt64BE(4),
    length: rest.readUInt32BE(12),
  };
}

/** Extents of a `NBD_REPLY_TYPE_BLOCK_STATUS` chunk: context id and (length, flags) pairs. */
export function decodeBlockStatus(payload: Buffer): {
  readonly context: number;
  readonly extents: readonly { readonly length: number; readonly flags: number }[];
} {
  const context = payload.readUInt32BE(0);
  const extents: { length: number; flags: number }[] = [];
  for (let at = 4; at + 8 <= payload.length; at += 8)
    extents.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
  return { context, extents };
}

/** The error of an error chunk: errno and message. */
export function decodeErrorChunk(payload: Buffer): {
  readonly errno: number;
  readonly message: string;
} {
  const errno = payload.readUInt32BE(0);
  const len = payload.readUInt16BE(4);
  return { errno, message: payload.subarray(6, 6 + len).toString('utf8') };
}
