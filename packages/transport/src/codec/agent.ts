import { isUtf8 } from 'node:buffer';
import { QmpProtocolError } from '../errors.js';

/**
 * The guest agent's framing (qemu-ga over a virtio-serial port): one JSON object per line,
 * like QMP, with one addition — `guest-sync-delimited` writes a 0xFF byte before its reply.
 * 0xFF never occurs in UTF-8, so it marks a point from which the stream can be trusted: bytes
 * before it may be the rest of a reply meant for an earlier client (the port is a pipe that
 * outlives connections). Pure and incremental, like `QmpDecoder`: no I/O, chunks may split
 * anything, memory bounded by `maxLineBytes`.
 */
export interface AgentMessageHandler {
  /**
   * A complete JSON object. `delimited` is true when a 0xFF came right before it (the reply
   * to a `guest-sync-delimited`, ours or a stale one).
   */
  message(value: Record<string, unknown>, line: string, delimited: boolean): void;
  /** A line that is not a JSON object (bad UTF-8, bad JSON, too long). Decoding goes on. */
  protocolError(error: QmpProtocolError): void;
}

export interface AgentDecoderOptions {
  /** Longest accepted line in bytes (default 64 MiB). */
  readonly maxLineBytes?: number;
}

const DELIMITER = 0xff;
const NEWLINE = 0x0a;

export class AgentDecoder {
  private readonly handler: AgentMessageHandler;
  private readonly maxLineBytes: number;
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Dropping bytes up to the next 0xFF (after sending `guest-sync-delimited`). */
  private seeking = false;
  /** Dropping the rest of an over-long line. */
  private skippingLine = false;
  private delimited = false;
  private droppedBytes = 0;

  constructor(handler: AgentMessageHandler, options: AgentDecoderOptions = {}) {
    this.handler = handler;
    const max = options.maxLineBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('maxLineBytes must be ≥ 1');
    this.maxLineBytes = max;
  }

  /** Drop everything up to and including the next 0xFF: call right after sending a sync. */
  seekDelimiter(): void {
    this.seeking = true;
    this.droppedBytes += this.partsLength;
    this.parts = [];
    this.partsLength = 0;
    this.skippingLine = false;
  }

  /** True while bytes are dropped up to the next 0xFF. */
  get isSeeking(): boolean {
    return this.seeking;
  }

  /** Bytes held for an incomplete line. */
  get bufferedBytes(): number {
    return this.partsLength;
  }

  /** Bytes dropped so far as stale (before a 0xFF, or a line cut short by one). */
  get staleBytes(): number {
    return this.droppedBytes;
  }

  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    const end = buf.length;
    while (start < end) {
      if (this.seeking) {
        const ff = buf.indexOf(DELIMITER, start);
        if (ff === -1) {
          this.droppedBytes += end - start;
          return;
        }
        this.droppedBytes += ff - start;
        this.seeking = false;
        this.delimited = true;
        start = ff + 1;
        continue;
      }
      const nl = buf.indexOf(NEWLINE, start);
      const ff = buf.indexOf(DELIMITER, start);
      if (ff !== -1 && (nl === -1 || ff < nl)) {
        // A sync reply starts here: whatever came before it on this line is cut off.
        this.droppedBytes += this.partsLength + (ff - start);
        this.parts = [];
        this.partsLength = 0;
        this.skippingLine = false;
        this.delimited = true;
        start = ff + 1;
        continue;
      }
      const stop = nl === -1 ? end : nl;
      if (!this.skippingLine) {
        this.parts.push(buf.subarray(start, stop));
        this.partsLength += stop - start;
        if (this.partsLength > this.maxLineBytes) {
          this.parts = [];
          this.partsLength = 0;
          this.skippingLine = true;
          this.handler.protocolError(
            new QmpProtocolError(
              'line-too-long',
              `guest agent line longer than ${this.maxLineBytes} bytes`,
            ),
          );
        }
      }
      if (nl === -1) return;
      start = nl + 1;
      if (this.skippingLine) {
        this.skippingLine = false;
        this.delimited = false;
        continue;
      }
      const line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
      this.parts = [];
      this.partsLength = 0;
      this.line(line);
    }
  }

  private line(bytes: Buffer): void {
    const delimited = this.delimited;
    this.delimited = false;
    if (!isUtf8(bytes)) {
      this.handler.protocolError(
        new QmpProtocolError(
          'invalid-utf8',
          'the guest agent sent a line that is not UTF-8',
          bytes.toString('latin1'),
        ),
      );
      return;
    }
    const text = bytes.toString('utf8');
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      this.handler.protocolError(
        new QmpProtocolError('invalid-json', 'the guest agent sent a line that is not JSON', text, {
          cause: error,
        }),
      );
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.handler.protocolError(
        new QmpProtocolError(
          'not-an-object',
          'the guest agent sent JSON that is not an object',
          text,
        ),
      );
      return;
    }
    this.handler.message(value as Record<string, unknown>, text, delimited);
  }
}
