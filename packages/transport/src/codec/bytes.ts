/**
 * The byte operations the codec needs, on plain `Uint8Array`s, with no Node import: the same
 * codec runs in Node and in a browser. Two implementations with one contract:
 * - `nodeBytes`, used when the runtime has a global `Buffer` (Node): chunks are viewed as
 *   `Buffer`s, whose `toString` is about twice as fast as `TextDecoder` for short lines (what a
 *   client mostly decodes), so the Node path stays exactly what it was;
 * - `webBytes` (browsers, workers, Deno without `Buffer`): `TextDecoder` and `Uint8Array`.
 * Both map invalid UTF-8 to U+FFFD in `text` and report it exactly in `isUtf8`.
 */
export interface Bytes {
  /** A view of `chunk` that every other method accepts (no copy). */
  view(chunk: Uint8Array): Uint8Array;
  /** An owned copy of `bytes`. */
  copy(bytes: Uint8Array): Uint8Array;
  /** One array holding `parts` in order; `total` is their summed length. */
  concat(parts: readonly Uint8Array[], total: number): Uint8Array;
  /** `bytes[start, end)` as UTF-8 text, invalid sequences as U+FFFD. */
  text(bytes: Uint8Array, start: number, end: number): string;
  /** True when `bytes` is valid UTF-8. */
  isUtf8(bytes: Uint8Array): boolean;
  /** `text` encoded as UTF-8. */
  encode(text: string): Uint8Array;
}

const strict = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    // The fatal decoder throws a TypeError exactly on invalid UTF-8: that is the answer.
    return false;
  }
}

const lenient = new TextDecoder('utf-8');
const textEncoder = new TextEncoder();

export const webBytes: Bytes = {
  view: (chunk) => chunk,
  copy: (bytes) => bytes.slice(),
  concat(parts, total) {
    if (parts.length === 1 && parts[0]!.length === total) return parts[0]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  },
  text: (bytes, start, end) => lenient.decode(bytes.subarray(start, end)),
  isUtf8,
  encode: (text) => textEncoder.encode(text),
};

/** The parts of Node's `Buffer` used here (typed locally: no dependency on Node's types). */
interface NodeBuffer extends Uint8Array {
  toString(encoding?: 'utf8', start?: number, end?: number): string;
}
interface NodeBufferClass {
  isBuffer(value: unknown): boolean;
  from(buffer: ArrayBufferLike, byteOffset: number, length: number): NodeBuffer;
  from(bytes: Uint8Array): NodeBuffer;
  from(text: string, encoding: 'utf8'): NodeBuffer;
  concat(list: readonly Uint8Array[], totalLength: number): NodeBuffer;
}

function makeNodeBytes(B: NodeBufferClass): Bytes {
  const asBuffer = (bytes: Uint8Array): NodeBuffer =>
    B.isBuffer(bytes)
      ? (bytes as NodeBuffer)
      : B.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    view: asBuffer,
    copy: (bytes) => B.from(bytes),
    concat: (parts, total) => B.concat(parts, total),
    text: (bytes, start, end) => asBuffer(bytes).toString('utf8', start, end),
    isUtf8,
    encode: (text) => B.from(text, 'utf8'),
  };
}

const globalBuffer = (globalThis as { Buffer?: NodeBufferClass }).Buffer;

/** The Node implementation, or undefined where the runtime has no `Buffer`. */
export const nodeBytes: Bytes | undefined =
  typeof globalBuffer === 'function' ? makeNodeBytes(globalBuffer) : undefined;

/** What the codec uses: `Buffer` where it exists, else the web implementation. */
export const bytes: Bytes = nodeBytes ?? webBytes;

/** `bytes[start, end)` as Latin-1 (for short ASCII tokens such as JSON keywords). */
export function latin1(data: Uint8Array, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCharCode(data[i]!);
  return out;
}
