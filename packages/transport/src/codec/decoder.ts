import { QmpProtocolError, type QmpProtocolErrorCode } from '../errors.js';
import { bytes } from './bytes.js';
import type {
  QmpMessage,
  WireCommand,
  WireError,
  WireEvent,
  WireGreeting,
  WireReturn,
} from './messages.js';
import { JsonStreamSplitter, type SplitErrorKind } from './splitter.js';

/**
 * What the decoder calls for each message. Messages are classified by shape only (never by
 * position): an event before the greeting, or between `qmp_capabilities` and its reply, is
 * an event like any other.
 */
export interface QmpMessageHandler {
  // Every callback also receives the decoded line (without its line ending), for servers
  // that must re-read the exact text (e.g. a fake QEMU reproducing QEMU's own parser).
  greeting(message: WireGreeting, line: string): void;
  return(message: WireReturn, line: string): void;
  error(message: WireError, line: string): void;
  event(message: WireEvent, line: string): void;
  /** Client commands (`execute` / `exec-oob`): what a server decodes. */
  command(message: WireCommand, line: string): void;
  /**
   * A line that could not be decoded. Decoding goes on with the next line unless the
   * handler calls `decoder.stop()`; a client should treat any of these as fatal. `line` is
   * the whole decoded line when there is one (absent for over-long lines and truncation);
   * with stream framing it is the message, or for `stray-token` the offending token.
   */
  protocolError(error: QmpProtocolError, line?: string): void;
  /**
   * A JSON object of none of the five shapes. Optional: servers use it to answer like QEMU
   * ("QMP input lacks member 'execute'"); without it such a line is a protocol error.
   */
  other?(value: object, line: string): void;
}

export interface QmpDecoderOptions {
  /**
   * Longest accepted line in bytes (default 64 MiB). Longer lines are reported as
   * `line-too-long` as soon as the limit is passed and then skipped without buffering.
   */
  readonly maxLineBytes?: number;
  /**
   * The caller never modifies a chunk after `push` (true for Node socket reads): the
   * pieces of an incomplete line are kept by reference instead of copied. Default false.
   */
  readonly chunksAreImmutable?: boolean;
  /**
   * How messages are delimited. `lines` (default): one message per line, which is what
   * QEMU writes (the client side; fastest). `stream`: how QEMU *reads* — a JSON stream in
   * which a message ends when its braces balance, with or without a newline, several per
   * line or one across lines (the server side, e.g. a fake QEMU). In stream mode
   * `maxLineBytes` bounds one message, and lexical errors and QEMU's per-message limits
   * arrive as `stray-token`, `message-too-long`, `too-many-tokens` and `nesting-too-deep`.
   */
  readonly framing?: 'lines' | 'stream';
}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

const NEWLINE = 0x0a;
const CR = 0x0d;
/** JSON whitespace only (what QMP may put between messages). */
const BLANK = /^[ \t\r\n]*$/;

/**
 * Incremental, allocation-light decoder for the QMP byte stream (newline-delimited JSON).
 * Chunks may split or coalesce messages anywhere, including inside a multi-byte UTF-8
 * character. Memory is bounded by `maxLineBytes` plus one chunk.
 */
export class QmpDecoder {
  private readonly handler: QmpMessageHandler;
  private readonly maxLineBytes: number;
  /** Pieces of the current, incomplete line (copies; the caller may reuse its chunks). */
  private parts: Uint8Array[] = [];
  private partsLength = 0;
  /** Inside an over-long line: drop bytes until the next newline. */
  private discarding = false;
  private stopped = false;
  private readonly copyPartial: boolean;
  /** Stream framing (undefined: lines). */
  private readonly splitter: JsonStreamSplitter | undefined;

  constructor(handler: QmpMessageHandler, options: QmpDecoderOptions = {}) {
    this.handler = handler;
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('maxLineBytes must be ≥ 1');
    this.maxLineBytes = max;
    this.copyPartial = options.chunksAreImmutable !== true;
    this.splitter =
      options.framing === 'stream'
        ? new JsonStreamSplitter(
            {
              message: (data, start, end, json) => {
                if (json) this.line(data, start, end);
                else this.notJson(bytes.text(data, start, end));
              },
              error: (kind, token) => this.splitError(kind, token),
            },
            max,
          )
        : undefined;
  }

  /** Bytes held for an incomplete line (or message, with stream framing). */
  get bufferedBytes(): number {
    return this.splitter ? this.splitter.bufferedBytes : this.partsLength;
  }

  /** Stop decoding: the rest of the current chunk and later chunks are ignored. */
  stop(): void {
    this.stopped = true;
    this.parts = [];
    this.partsLength = 0;
    this.splitter?.halt();
    this.splitter?.reset();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Feeds bytes; calls the handler once per complete message, in order. */
  push(chunk: Uint8Array): void {
    if (this.stopped) return;
    const buf = bytes.view(chunk);
    if (this.splitter) {
      this.splitter.push(buf);
      return;
    }
    const length = buf.length;
    let start = 0;
    if (this.discarding) {
      const nl = buf.indexOf(NEWLINE);
      if (nl < 0) return;
      this.discarding = false;
      start = nl + 1;
    }
    if (this.partsLength > 0 && start < length) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl < 0) {
        this.appendPartial(buf, start, length);
        return;
      }
      const total = this.partsLength + (nl - start);
      if (total > this.maxLineBytes) {
        this.parts = [];
        this.partsLength = 0;
        this.tooLong(total);
      } else {
        this.parts.push(buf.subarray(start, nl));
        const line = this.parts.length === 1 ? this.parts[0]! : bytes.concat(this.parts, total);
        this.parts = [];
        this.partsLength = 0;
        this.line(line, 0, line.length);
      }
      start = nl + 1;
    }
    if (start >= length || this.stopped) return;
    const last = buf.lastIndexOf(NEWLINE);
    if (last < start) {
      this.appendPartial(buf, start, length);
      return;
    }
    if (last - start <= this.maxLineBytes) {
      // Fast path: all complete lines of the chunk become one string (one native call);
      // the region is within the limit, so every line in it is too.
      const text = bytes.text(buf, start, last);
      if (text.indexOf('\uFFFD') < 0) {
        this.lines(text);
        if (last + 1 < length && !this.stopped) this.appendPartial(buf, last + 1, length);
        return;
      }
      // U+FFFD: maybe invalid UTF-8; check line by line below.
    }
    while (start < length && !this.stopped) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl < 0) {
        this.appendPartial(buf, start, length);
        return;
      }
      if (nl - start > this.maxLineBytes) this.tooLong(nl - start);
      else this.line(buf, start, nl);
      start = nl + 1;
    }
  }

  /**
   * The stream ended. A non-empty incomplete line is a `truncated` protocol error (the peer
   * closed mid-message); returns true when the stream ended cleanly.
   */
  end(): boolean {
    if (this.stopped) return true;
    if (this.splitter) {
      const rest = this.splitter.end();
      if (rest === undefined) return true;
      this.handler.protocolError(
        new QmpProtocolError(
          'truncated',
          `stream ended inside a message (${rest.length} bytes)`,
          bytes.text(rest, 0, Math.min(rest.length, 512)),
        ),
      );
      return false;
    }
    const pending = this.partsLength;
    const partial = pending > 0 ? bytes.concat(this.parts, pending) : undefined;
    this.parts = [];
    this.partsLength = 0;
    this.discarding = false;
    if (partial === undefined || isBlank(partial, 0, partial.length)) return true;
    this.handler.protocolError(
      new QmpProtocolError(
        'truncated',
        `stream ended inside a message (${pending} bytes without a newline)`,
        bytes.text(partial, 0, Math.min(partial.length, 512)),
      ),
    );
    return false;
  }

  private appendPartial(buf: Uint8Array, start: number, end: number): void {
    const total = this.partsLength + (end - start);
    if (total > this.maxLineBytes) {
      this.parts = [];
      this.partsLength = 0;
      this.discarding = true;
      this.tooLong(total);
      return;
    }
    // Copy unless told the caller never reuses its chunks.
    const piece = buf.subarray(start, end);
    this.parts.push(this.copyPartial ? bytes.copy(piece) : piece);
    this.partsLength = total;
  }

  /** A message the splitter knows is not standard JSON (no JSON.parse, no SyntaxError). */
  private notJson(text: string): void {
    this.handler.protocolError(
      streamError('invalid-json', 'QMP message is not valid JSON', text),
      text,
    );
  }

  private splitError(kind: SplitErrorKind, token: Uint8Array | undefined): void {
    if (kind === 'stray') {
      const text = token === undefined ? '' : bytes.text(token, 0, token.length);
      this.handler.protocolError(
        streamError('stray-token', 'QMP input has a stray token', text),
        text,
      );
    } else if (kind === 'too-long') {
      this.handler.protocolError(
        streamError(
          'message-too-long',
          `a QMP message exceeded the limit of ${this.maxLineBytes} bytes`,
        ),
      );
    } else if (kind === 'too-many-tokens') {
      this.handler.protocolError(
        streamError('too-many-tokens', 'a QMP message has too many JSON tokens'),
      );
    } else {
      this.handler.protocolError(
        streamError('nesting-too-deep', 'a QMP message nests JSON too deeply'),
      );
    }
    if (this.stopped) this.splitter?.halt();
  }

  private tooLong(atLeast: number): void {
    this.handler.protocolError(
      new QmpProtocolError(
        'line-too-long',
        `a QMP line exceeded the limit of ${this.maxLineBytes} bytes (≥ ${atLeast})`,
      ),
    );
  }

  /** Decodes the newline-separated lines of `text` (valid UTF-8, no final newline). */
  private lines(text: string): void {
    const n = text.length;
    let i = 0;
    while (i <= n && !this.stopped) {
      let j = text.indexOf('\n', i);
      if (j < 0) j = n;
      let end = j;
      if (end > i && text.charCodeAt(end - 1) === CR) end--;
      if (end > i) this.parse(i === 0 && end === n ? text : text.slice(i, end));
      i = j + 1;
    }
  }

  /** Slow path for one line: checks its bytes for invalid UTF-8. */
  private line(buf: Uint8Array, start: number, end: number): void {
    if (end > start && buf[end - 1] === CR) end--;
    if (end <= start) return;
    const text = bytes.text(buf, start, end);
    // Decoding maps invalid UTF-8 to U+FFFD; only then pay for a strict check.
    if (text.indexOf('\uFFFD') >= 0 && !bytes.isUtf8(buf.subarray(start, end))) {
      this.handler.protocolError(
        new QmpProtocolError('invalid-utf8', 'QMP line is not valid UTF-8', text),
        text,
      );
      return;
    }
    this.parse(text);
  }

  private parse(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      if (BLANK.test(text)) return;
      this.handler.protocolError(
        new QmpProtocolError('invalid-json', 'QMP line is not valid JSON', text, { cause: error }),
        text,
      );
      return;
    }
    this.classify(value, text);
  }

  private classify(value: unknown, text: string): void {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.handler.protocolError(
        new QmpProtocolError('not-an-object', 'QMP message is not a JSON object', text),
        text,
      );
      return;
    }
    const v = value as Record<string, unknown>;
    if (v.return !== undefined) {
      this.handler.return(v as unknown as WireReturn, text);
      return;
    }
    const error = v.error;
    if (error !== undefined) {
      if (
        typeof error === 'object' &&
        error !== null &&
        typeof (error as Record<string, unknown>).class === 'string' &&
        typeof (error as Record<string, unknown>).desc === 'string'
      ) {
        this.handler.error(v as unknown as WireError, text);
      } else {
        this.handler.protocolError(
          new QmpProtocolError('unknown-shape', 'QMP error without class/desc strings', text),
          text,
        );
      }
      return;
    }
    if (typeof v.event === 'string') {
      this.handler.event(v as unknown as WireEvent, text);
      return;
    }
    const qmp = v.QMP;
    if (qmp !== undefined) {
      const q = qmp as Record<string, unknown> | null;
      if (
        typeof q === 'object' &&
        q !== null &&
        typeof q.version === 'object' &&
        q.version !== null &&
        Array.isArray(q.capabilities)
      ) {
        this.handler.greeting(v as unknown as WireGreeting, text);
      } else {
        this.handler.protocolError(
          new QmpProtocolError('bad-greeting', 'QMP greeting without version/capabilities', text),
          text,
        );
      }
      return;
    }
    if (typeof v.execute === 'string' || typeof v['exec-oob'] === 'string') {
      this.handler.command(v as WireCommand, text);
      return;
    }
    if (this.handler.other) {
      this.handler.other(v, text);
      return;
    }
    this.handler.protocolError(
      new QmpProtocolError(
        'unknown-shape',
        'JSON object is not a QMP greeting, return, error, event or command',
        text,
      ),
      text,
    );
  }
}

/**
 * A protocol error of stream framing (the server side), made without a stack trace: a peer
 * sending garbage causes one per message, the stack would only show the decoder's own
 * frames, and capturing it dominated the cost of garbage input.
 */
function streamError(code: QmpProtocolErrorCode, message: string, raw?: string): QmpProtocolError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new QmpProtocolError(code, message, raw);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function isBlank(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== NEWLINE) return false;
  }
  return true;
}

/**
 * Decodes a whole recorded stream at once (tests, tools). Throws the first protocol error
 * unless `collectErrors` is given, in which case errors are pushed there and decoding goes on.
 */
export function decodeAll(
  input: Uint8Array | string,
  options: QmpDecoderOptions & { collectErrors?: QmpProtocolError[] } = {},
): QmpMessage[] {
  const out: QmpMessage[] = [];
  const errors = options.collectErrors;
  const decoder = new QmpDecoder(
    {
      greeting: (message) => out.push({ kind: 'greeting', message }),
      return: (message) => out.push({ kind: 'return', message }),
      error: (message) => out.push({ kind: 'error', message }),
      event: (message) => out.push({ kind: 'event', message }),
      command: (message) => out.push({ kind: 'command', message }),
      protocolError: (error) => {
        if (!errors) throw error;
        errors.push(error);
      },
    },
    options,
  );
  decoder.push(typeof input === 'string' ? bytes.encode(input) : input);
  decoder.end();
  return out;
}
