/**
 * Stream framing for QMP input, the way QEMU's monitor reads it: the byte stream is a
 * sequence of JSON values with no delimiter, so a message ends when its braces and brackets
 * balance (or at the end of a top-level scalar), wherever the newlines are. `{"a":1}{"b":2}`
 * is two messages, `{"a":\n1}` one, and nothing waits for a newline.
 *
 * The lexer follows QEMU 7.2's JSON lexer state by state, so message boundaries and lexical
 * errors fall where QEMU puts them: single-quoted strings (with `\'`), control characters
 * refused inside strings, `0`-prefixed numbers and stray bytes refused, and error recovery
 * that skips to the next structural or control character. Limits are QEMU's per-message ones
 * (token count, nesting depth) plus a byte bound on the buffered message.
 *
 * Pure and incremental: bytes in, callbacks out; memory is bounded by `maxMessageBytes`.
 * Written from QEMU's documented behaviour and measurements of qemu-system-x86_64 7.2.
 */

import { bytes, latin1 } from './bytes.js';

/** Why a message was refused by the splitter (QEMU's own limits and lexical errors). */
export type SplitErrorKind = 'stray' | 'too-long' | 'too-many-tokens' | 'too-deep';

export interface SplitSink {
  /**
   * One complete message: `bytes[start, end)`, from its first token to its last. `json` is
   * false when the message cannot be standard JSON (a single-quoted string, a keyword other
   * than true/false/null, or a message that starts with `}`, `]`, `,` or `:`): the caller can
   * skip `JSON.parse`, whose exceptions are slow.
   */
  message(bytes: Uint8Array, start: number, end: number, json: boolean): void;
  /**
   * A lexical error (`stray`, with the bytes of the offending token up to and including the
   * byte that broke it) or a limit. The message being read is dropped and reading goes on.
   */
  error(kind: SplitErrorKind, token?: Uint8Array): void;
}

/** QEMU's per-message limits (json-streamer). */
export const MAX_MESSAGE_TOKENS = 2 * 1024 * 1024;
export const MAX_NESTING = 1024;

enum St {
  Start,
  Recovery,
  DqString,
  DqEscape,
  SqString,
  SqEscape,
  Zero,
  ExpDigits,
  ExpSign,
  ExpE,
  Mantissa,
  MantissaDigits,
  Digits,
  Sign,
  Keyword,
}

/** What a finished token does to the message structure. */
enum Tk {
  Open,
  Close,
  Other,
}

const EMPTY = new Uint8Array(0);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isLower = (c: number) => c >= 0x61 && c <= 0x7a;

export class JsonStreamSplitter {
  private state: St = St.Start;
  /** Absolute stream offset of the first byte of the current chunk. */
  private base = 0;
  /** Kept bytes of earlier chunks, starting at absolute offset `keptFrom`. */
  private kept: Uint8Array[] = [];
  private keptLength = 0;
  private keptFrom = 0;
  /** Absolute offsets: first byte of the current message / token; -1 when none. */
  private messageStart = -1;
  private tokenStart = -1;
  private tokens = 0;
  private braces = 0;
  private brackets = 0;
  /** The current message passed the byte bound: lex on, keep nothing, drop it at its end. */
  private oversized = false;
  /** The current message may be standard JSON (see `SplitSink.message`). */
  private json = true;
  private halted = false;

  constructor(
    private readonly sink: SplitSink,
    private readonly maxMessageBytes: number,
  ) {}

  /** Bytes held for the incomplete message. */
  get bufferedBytes(): number {
    return this.keptLength;
  }

  /** True while a message (or a token of one) has started and not ended. */
  get pending(): boolean {
    return this.messageStart >= 0 || (this.state !== St.Start && this.state !== St.Recovery);
  }

  /** Drops any incomplete message and restarts at a message boundary. */
  reset(): void {
    this.state = St.Start;
    this.dropMessage();
    this.tokenStart = -1;
  }

  /**
   * Feeds bytes. A sink callback may call `halt()` to stop at once: the rest of the chunk
   * is ignored and the incomplete message dropped.
   */
  push(buf: Uint8Array): void {
    const length = buf.length;
    const base = this.base;
    this.halted = false;
    for (let i = 0; i < length && !this.halted; i++) this.byte(buf, i, base);
    this.base = base + length;
    if (this.halted) this.reset();
    else this.keep(buf, base);
  }

  /** Stops the current `push` after the callback that calls it. */
  halt(): void {
    this.halted = true;
  }

  /** The stream ended: returns the bytes of an incomplete message, if any (not blank). */
  end(): Uint8Array | undefined {
    const start = this.messageStart >= 0 ? this.messageStart : this.tokenStart;
    const rest =
      start >= 0 && !this.oversized ? this.slice(EMPTY, this.base, start, this.base) : undefined;
    this.reset();
    return rest !== undefined && rest.length > 0 ? rest : undefined;
  }

  /** Keeps the unfinished message's bytes of this chunk (bounded). */
  private keep(buf: Uint8Array, base: number): void {
    const from = this.messageStart >= 0 ? this.messageStart : this.tokenStart;
    if (from < 0 || this.oversized) {
      this.kept = [];
      this.keptLength = 0;
      return;
    }
    const chunkFrom = Math.max(from, base) - base;
    if (from >= base) {
      // The message starts in this chunk: nothing earlier is needed.
      this.kept = [];
      this.keptLength = 0;
      this.keptFrom = from;
    }
    const piece = buf.subarray(chunkFrom);
    if (this.keptLength + piece.length > this.maxMessageBytes) {
      this.kept = [];
      this.keptLength = 0;
      this.oversized = true;
      this.sink.error('too-long');
      return;
    }
    // Copy: the caller may reuse its chunk after push returns.
    if (piece.length > 0) {
      this.kept.push(bytes.copy(piece));
      this.keptLength += piece.length;
    }
  }

  /** Bytes [from, to) (absolute) from the kept pieces and the current chunk. */
  private slice(buf: Uint8Array, base: number, from: number, to: number): Uint8Array {
    if (from >= base) return buf.subarray(from - base, to - base);
    const kept = this.keptLength === 0 ? EMPTY : bytes.concat(this.kept, this.keptLength);
    const head = kept.subarray(from - this.keptFrom);
    if (to <= base) return head.subarray(0, to - from);
    return bytes.concat([head, buf.subarray(0, to - base)], head.length + to - base);
  }

  private dropMessage(): void {
    this.messageStart = -1;
    this.tokens = 0;
    this.braces = 0;
    this.brackets = 0;
    this.oversized = false;
    this.json = true;
    this.kept = [];
    this.keptLength = 0;
  }

  private byte(buf: Uint8Array, i: number, base: number): void {
    const c = buf[i]!;
    for (;;) {
      const from = this.state;
      let next = from;
      let token: Tk | -1 = -1;
      let lookahead = false;
      let error = false;
      switch (from) {
        case St.Start:
          if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) return;
          this.tokenStart = base + i;
          if (c === 0x22) next = St.DqString;
          else if (c === 0x27) next = St.SqString;
          else if (c === 0x30) next = St.Zero;
          else if (c >= 0x31 && c <= 0x39) next = St.Digits;
          else if (c === 0x2d) next = St.Sign;
          else if (c === 0x7b || c === 0x5b) token = Tk.Open;
          else if (c === 0x7d || c === 0x5d) {
            token = Tk.Close;
            if (this.messageStart < 0) this.json = false;
          } else if (c === 0x2c || c === 0x3a) {
            token = Tk.Other;
            if (this.messageStart < 0) this.json = false;
          } else if (isLower(c)) next = St.Keyword;
          else error = true;
          break;
        case St.Recovery:
          if (
            (c < 0x20 && c !== 0x09) ||
            c === 0x5b ||
            c === 0x5d ||
            c === 0x7b ||
            c === 0x7d ||
            c === 0x3a ||
            c === 0x2c
          ) {
            this.state = St.Start; // resynchronised: look at this byte again
            continue;
          }
          return;
        case St.DqString:
          if (c === 0x22) token = Tk.Other;
          else if (c === 0x5c) next = St.DqEscape;
          else if (c < 0x20) error = true;
          break;
        case St.SqString:
          if (c === 0x27) {
            token = Tk.Other;
            this.json = false;
          } else if (c === 0x5c) next = St.SqEscape;
          else if (c < 0x20) error = true;
          break;
        case St.DqEscape:
          if (c >= 0x20) next = St.DqString;
          else error = true;
          break;
        case St.SqEscape:
          if (c >= 0x20) next = St.SqString;
          else error = true;
          break;
        case St.Zero:
          if (isDigit(c)) error = true;
          else if (c === 0x2e) next = St.Mantissa;
          else [token, lookahead] = [Tk.Other, true];
          break;
        case St.ExpDigits:
          if (!isDigit(c)) [token, lookahead] = [Tk.Other, true];
          break;
        case St.ExpSign:
          if (isDigit(c)) next = St.ExpDigits;
          else error = true;
          break;
        case St.ExpE:
          if (c === 0x2b || c === 0x2d) next = St.ExpSign;
          else if (isDigit(c)) next = St.ExpDigits;
          else error = true;
          break;
        case St.Mantissa:
          if (isDigit(c)) next = St.MantissaDigits;
          else error = true;
          break;
        case St.MantissaDigits:
          if (c === 0x65 || c === 0x45) next = St.ExpE;
          else if (!isDigit(c)) [token, lookahead] = [Tk.Other, true];
          break;
        case St.Digits:
          if (c === 0x65 || c === 0x45) next = St.ExpE;
          else if (c === 0x2e) next = St.Mantissa;
          else if (!isDigit(c)) [token, lookahead] = [Tk.Other, true];
          break;
        case St.Sign:
          if (c === 0x30) next = St.Zero;
          else if (c >= 0x31 && c <= 0x39) next = St.Digits;
          else error = true;
          break;
        case St.Keyword:
          if (!isLower(c)) {
            [token, lookahead] = [Tk.Other, true];
            if (!this.standardKeyword(buf, base, base + i)) this.json = false;
          }
          break;
      }
      if (error) {
        const stray = this.oversized
          ? undefined
          : this.slice(buf, base, this.tokenStart, base + i + 1);
        this.state = St.Recovery;
        this.tokenStart = -1;
        this.dropMessage();
        this.sink.error('stray', stray === undefined ? undefined : Uint8Array.from(stray));
        return;
      }
      if (token !== -1) {
        this.state = St.Start;
        this.token(token, buf, base, lookahead ? base + i : base + i + 1);
        if (lookahead) continue;
        return;
      }
      this.state = next;
      return;
    }
  }

  /** The keyword token ending before `end` (absolute) is true, false or null. */
  private standardKeyword(buf: Uint8Array, base: number, end: number): boolean {
    const length = end - this.tokenStart;
    if (length !== 4 && length !== 5) return false;
    const token = this.slice(buf, base, this.tokenStart, end);
    const word = latin1(token, 0, token.length);
    return word === 'true' || word === 'null' || word === 'false';
  }

  /** QEMU's json-streamer: a message ends when braces and brackets balance. */
  private token(type: Tk, buf: Uint8Array, base: number, end: number): void {
    if (this.messageStart < 0) this.messageStart = this.tokenStart;
    this.tokenStart = -1;
    if (type !== Tk.Other) {
      const c = buf[end - base - 1];
      const delta = type === Tk.Open ? 1 : -1;
      if (c === 0x7b || c === 0x7d) this.braces += delta;
      else this.brackets += delta;
    }
    let limit: SplitErrorKind | undefined;
    if (++this.tokens > MAX_MESSAGE_TOKENS) limit = 'too-many-tokens';
    else if (this.braces + this.brackets > MAX_NESTING) limit = 'too-deep';
    if (limit !== undefined) {
      this.dropMessage();
      this.sink.error(limit);
      return;
    }
    if ((this.braces > 0 || this.brackets > 0) && this.braces >= 0 && this.brackets >= 0) return;
    const start = this.messageStart;
    const oversized = this.oversized || end - start > this.maxMessageBytes;
    // Bytes from earlier chunks are joined before the kept pieces are released.
    const bytes = oversized || start >= base ? undefined : this.slice(buf, base, start, end);
    const reported = this.oversized;
    const json = this.json;
    this.dropMessage();
    if (oversized) {
      if (!reported) this.sink.error('too-long');
    } else if (bytes) this.sink.message(bytes, 0, bytes.length, json);
    else this.sink.message(buf, start - base, end - base, json);
  }
}
