/**
 * The fake's input side: the shared `QmpDecoder` in stream framing splits the bytes into
 * messages exactly where QEMU's lexer does (no newline needed, several per line, one across
 * lines; lexical errors and limits) and `JSON.parse`s each (fast path); a message goes to the
 * QEMU-exact parser instead when JSON.parse could judge it differently from QEMU (single
 * quotes, `\u` escapes, non-ASCII or control characters, numbers JavaScript cannot hold
 * exactly or that QEMU parses as doubles, duplicate keys, deep nesting) or refuses it.
 */
import { QmpDecoder } from '@qmpkit/transport/codec';
import { readQemuJson, strayText } from '../json/reader.js';
import type { QemuValue } from '../json/values.js';

export interface RequestSink {
  /** A complete JSON value, as QEMU's parser produced it. */
  request(value: QemuValue): void;
  /** QEMU's parse error text for input it could not parse. */
  parseError(desc: string): void;
  /** A message exceeded the size limit: answer and close this client. */
  overflow(limit: number): void;
}

/**
 * Scans a line JSON.parse accepted. Returns the number of `:` outside strings, or -1 when
 * QEMU might read the line differently and the exact reader must decide.
 */
export function plainLineColons(line: string): number {
  let colons = 0;
  let depth = 0;
  let digits = 0;
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c >= 0x80 || c < 0x20) return -1;
    if (inString) {
      if (c === 0x5c) {
        if (line.charCodeAt(i + 1) === 0x75) return -1; // \u: noncharacters, surrogates
        i++;
      } else if (c === 0x22) inString = false;
      continue;
    }
    if (c >= 0x30 && c <= 0x39) {
      if (++digits > 15) return -1; // beyond 2^53: QEMU keeps 64-bit integers exact
      const next = line.charCodeAt(i + 1);
      if (next === 0x2e || next === 0x65 || next === 0x45) return -1; // QEMU: a double
      continue;
    }
    digits = 0;
    if (c === 0x22) inString = true;
    else if (c === 0x3a) colons++;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > 1000) return -1;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x27) return -1;
  }
  return colons;
}

/** Number of object members in a parsed value (compare with the colons to find duplicates). */
function countKeys(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  if (Array.isArray(value)) {
    for (const v of value) n += countKeys(v);
    return n;
  }
  for (const key in value as Record<string, unknown>) {
    n += 1 + countKeys((value as Record<string, unknown>)[key]);
  }
  return n;
}

export class RequestReader {
  private readonly decoder: QmpDecoder;
  private stopped = false;

  constructor(
    private readonly sink: RequestSink,
    maxBytes: number,
  ) {
    const parsed = (value: object, text: string) => this.parsed(value, text);
    this.decoder = new QmpDecoder(
      {
        greeting: parsed,
        return: parsed,
        error: parsed,
        event: parsed,
        command: parsed,
        other: parsed,
        protocolError: (error, text) => {
          switch (error.code) {
            case 'message-too-long':
              this.stop();
              sink.overflow(maxBytes);
              return;
            case 'stray-token':
              sink.parseError(strayText(text ?? ''));
              return;
            case 'too-many-tokens':
              sink.parseError('JSON token count limit exceeded');
              return;
            case 'nesting-too-deep':
              sink.parseError('JSON nesting depth limit exceeded');
              return;
            default:
              // Not JSON.parse's JSON, or not a QMP shape: QEMU's parser and dispatcher decide.
              if (text !== undefined) this.slow(text);
          }
        },
      },
      { maxLineBytes: maxBytes, chunksAreImmutable: true, framing: 'stream' },
    );
  }

  stop(): void {
    this.stopped = true;
    this.decoder.stop();
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes;
  }

  push(chunk: Uint8Array): void {
    if (!this.stopped) this.decoder.push(chunk);
  }

  private parsed(value: object, text: string): void {
    const colons = plainLineColons(text);
    if (colons < 0 || colons !== countKeys(value)) {
      this.slow(text);
      return;
    }
    this.sink.request(value as QemuValue);
  }

  private slow(text: string): void {
    if (this.stopped) return;
    const result = readQemuJson(text);
    if ('error' in result) this.sink.parseError(result.error);
    else this.sink.request(result.value);
  }
}
