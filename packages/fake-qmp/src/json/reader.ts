/**
 * A streaming JSON reader that accepts and rejects exactly what QEMU 7.2's QMP monitor does,
 * with the same error texts: QEMU's lexer (single-quoted strings, `\'`, error recovery up to
 * the next structural or control character), its message splitter (a message ends when the
 * braces and brackets balance, not at a newline) and its parser (duplicate keys, invalid
 * `\u` escapes and noncharacters are errors; integers stay exact up to 64 bits).
 *
 * This is the slow path of the fake's input: ordinary one-line commands go through the
 * shared `QmpDecoder` and `JSON.parse`; lines that JSON.parse cannot judge the way QEMU would
 * come here (see `input.ts`). Written from QEMU's documented behaviour and measurements of
 * `qemu-system-x86_64` 7.2; no QEMU code.
 */
import { QemuFloat, type QemuValue } from './values.js';

enum Tok {
  LCurly,
  RCurly,
  LSquare,
  RSquare,
  Colon,
  Comma,
  Integer,
  Float,
  Keyword,
  String,
}

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

interface Token {
  readonly type: Tok;
  readonly text: string;
}

/** Per-message limits of QEMU's splitter. */
const MAX_TOKEN_SIZE = 64 * 1024 * 1024;
const MAX_TOKEN_COUNT = 2 * 1024 * 1024;
const MAX_NESTING = 1024;

export interface QemuJsonSink {
  value(value: QemuValue): void;
  /** A parse error, already in QEMU's words (`JSON parse error, …`). */
  error(desc: string): void;
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isLower = (c: number) => c >= 0x61 && c <= 0x7a;

export class QemuJsonReader {
  private state = St.Start;
  private token = '';
  private tokens: Token[] = [];
  private tokenSize = 0;
  private braces = 0;
  private brackets = 0;

  constructor(private readonly sink: QemuJsonSink) {}

  /** True while a message is incomplete (tokens waiting for their closing brace/bracket). */
  get pending(): boolean {
    return this.tokens.length > 0 || this.token.length > 0 || this.state !== St.Start;
  }

  /** Characters held for the incomplete message. */
  get bufferedChars(): number {
    return this.tokenSize + this.token.length;
  }

  /** Drops any incomplete message (QEMU does this when a client disconnects). */
  reset(): void {
    this.state = St.Start;
    this.token = '';
    this.resetMessage();
  }

  feed(text: string): void {
    for (let i = 0; i < text.length; i++) this.char(text.charCodeAt(i), text[i]!);
  }

  private char(c: number, ch: string): void {
    for (;;) {
      const from = this.state;
      let state = from;
      let emit: Tok | -1 = -1;
      let lookahead = false;
      let error = false;
      switch (from) {
        case St.Start:
          if (c === 0x22) state = St.DqString;
          else if (c === 0x27) state = St.SqString;
          else if (c === 0x30) state = St.Zero;
          else if (c >= 0x31 && c <= 0x39) state = St.Digits;
          else if (c === 0x2d) state = St.Sign;
          else if (c === 0x7b) emit = Tok.LCurly;
          else if (c === 0x7d) emit = Tok.RCurly;
          else if (c === 0x5b) emit = Tok.LSquare;
          else if (c === 0x5d) emit = Tok.RSquare;
          else if (c === 0x2c) emit = Tok.Comma;
          else if (c === 0x3a) emit = Tok.Colon;
          else if (isLower(c)) state = St.Keyword;
          else if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a)
            return; // whitespace
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
            this.state = St.Start; // resynchronised: look at this character again
            continue;
          }
          return; // skipped
        case St.DqString:
        case St.SqString:
          if (c === (from === St.DqString ? 0x22 : 0x27)) emit = Tok.String;
          else if (c === 0x5c) state = from === St.DqString ? St.DqEscape : St.SqEscape;
          else if (c < 0x20) error = true;
          break;
        case St.DqEscape:
          if (c >= 0x20) state = St.DqString;
          else error = true;
          break;
        case St.SqEscape:
          if (c >= 0x20) state = St.SqString;
          else error = true;
          break;
        case St.Zero:
          if (isDigit(c)) error = true;
          else if (c === 0x2e) state = St.Mantissa;
          else [emit, lookahead] = [Tok.Integer, true];
          break;
        case St.ExpDigits:
          if (!isDigit(c)) [emit, lookahead] = [Tok.Float, true];
          break;
        case St.ExpSign:
          if (isDigit(c)) state = St.ExpDigits;
          else error = true;
          break;
        case St.ExpE:
          if (c === 0x2b || c === 0x2d) state = St.ExpSign;
          else if (isDigit(c)) state = St.ExpDigits;
          else error = true;
          break;
        case St.Mantissa:
          if (isDigit(c)) state = St.MantissaDigits;
          else error = true;
          break;
        case St.MantissaDigits:
          if (c === 0x65 || c === 0x45) state = St.ExpE;
          else if (!isDigit(c)) [emit, lookahead] = [Tok.Float, true];
          break;
        case St.Digits:
          if (c === 0x65 || c === 0x45) state = St.ExpE;
          else if (c === 0x2e) state = St.Mantissa;
          else if (!isDigit(c)) [emit, lookahead] = [Tok.Integer, true];
          break;
        case St.Sign:
          if (c === 0x30) state = St.Zero;
          else if (c >= 0x31 && c <= 0x39) state = St.Digits;
          else error = true;
          break;
        case St.Keyword:
          if (!isLower(c)) [emit, lookahead] = [Tok.Keyword, true];
          break;
      }
      if (!lookahead) {
        // QEMU reads bytes: a non-ASCII character outside a string is a stray byte, which
        // QEMU prints back as U+FFFD.
        this.token += error && c >= 0x80 && !isStringState(from) ? '\uFFFD' : ch;
      }
      if (error) {
        const text = this.token;
        this.token = '';
        this.state = St.Recovery;
        this.stray(text);
        return;
      }
      if (emit !== -1) {
        const text = this.token;
        this.token = '';
        this.state = St.Start;
        this.process(emit, text);
        if (lookahead) continue;
        return;
      }
      this.state = state;
      return;
    }
  }

  private resetMessage(): void {
    this.tokens = [];
    this.tokenSize = 0;
    this.braces = 0;
    this.brackets = 0;
  }

  private stray(text: string): void {
    this.resetMessage();
    // QEMU formats the token as a C string: it ends at the first NUL byte.
    const nul = text.indexOf('\u0000');
    this.sink.error(`JSON parse error, stray '${nul < 0 ? text : text.slice(0, nul)}'`);
  }

  private process(type: Tok, text: string): void {
    if (type === Tok.LCurly) this.braces++;
    else if (type === Tok.RCurly) this.braces--;
    else if (type === Tok.LSquare) this.brackets++;
    else if (type === Tok.RSquare) this.brackets--;
    let limit: string | undefined;
    if (this.tokenSize + text.length + 1 > MAX_TOKEN_SIZE) limit = 'JSON token size limit exceeded';
    else if (this.tokens.length + 1 > MAX_TOKEN_COUNT) limit = 'JSON token count limit exceeded';
    else if (this.braces + this.brackets > MAX_NESTING) limit = 'JSON nesting depth limit exceeded';
    if (limit !== undefined) {
      this.resetMessage();
      this.sink.error(limit);
      return;
    }
    this.tokens.push({ type, text });
    this.tokenSize += text.length;
    if ((this.braces > 0 || this.brackets > 0) && this.braces >= 0 && this.brackets >= 0) return;
    const tokens = this.tokens;
    this.resetMessage();
    let value: QemuValue;
    try {
      value = new Parser(tokens).parse();
    } catch (error) {
      if (error instanceof ParseError) {
        this.sink.error(`JSON parse error, ${error.message}`);
        return;
      }
      throw error;
    }
    this.sink.value(value);
  }
}

function isStringState(state: St): boolean {
  return (
    state === St.DqString || state === St.SqString || state === St.DqEscape || state === St.SqEscape
  );
}

class ParseError extends Error {}

/** Code points QEMU refuses in strings: surrogates, noncharacters, beyond U+10FFFF. */
function validCodePoint(cp: number): boolean {
  if (cp < 0 || cp > 0x10ffff) return false;
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  return !(cp >= 0xd800 && cp <= 0xdfff);
}

function hex4(text: string, at: number): number {
  if (at + 4 > text.length) return -1;
  let cp = 0;
  for (let i = at; i < at + 4; i++) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else return -1;
    cp = (cp << 4) | d;
  }
  return cp;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

class Parser {
  private i = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  parse(): QemuValue {
    return this.value();
  }

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }

  private pop(): Token | undefined {
    return this.tokens[this.i++];
  }

  private value(): QemuValue {
    const token = this.peek();
    if (!token) throw new ParseError('premature EOI');
    switch (token.type) {
      case Tok.LCurly:
        return this.object();
      case Tok.LSquare:
        return this.array();
      case Tok.Integer:
      case Tok.Float:
      case Tok.String:
        return this.literal();
      case Tok.Keyword:
        return this.keyword();
      default:
        throw new ParseError('expecting value');
    }
  }

  private object(): QemuValue {
    this.pop();
    const dict = Object.create(null) as Record<string, QemuValue>;
    if (!this.peek()) throw new ParseError('premature EOI');
    if (this.peek()!.type === Tok.RCurly) {
      this.pop();
      return dict;
    }
    this.pair(dict);
    let token = this.pop();
    if (!token) throw new ParseError('premature EOI');
    while (token.type !== Tok.RCurly) {
      if (token.type !== Tok.Comma) throw new ParseError('expected separator in dict');
      this.pair(dict);
      token = this.pop();
      if (!token) throw new ParseError('premature EOI');
    }
    return dict;
  }

  private pair(dict: Record<string, QemuValue>): void {
    if (!this.peek()) throw new ParseError('premature EOI');
    const key = this.value();
    if (typeof key !== 'string') throw new ParseError('key is not a string in object');
    const colon = this.pop();
    if (!colon) throw new ParseError('premature EOI');
    if (colon.type !== Tok.Colon) throw new ParseError('missing : in object pair');
    const value = this.value();
    if (Object.hasOwn(dict, key)) throw new ParseError('duplicate key');
    dict[key] = value;
  }

  private array(): QemuValue {
    this.pop();
    const list: QemuValue[] = [];
    if (!this.peek()) throw new ParseError('premature EOI');
    if (this.peek()!.type === Tok.RSquare) {
      this.pop();
      return list;
    }
    list.push(this.value());
    let token = this.pop();
    if (!token) throw new ParseError('premature EOI');
    while (token.type !== Tok.RSquare) {
      if (token.type !== Tok.Comma) throw new ParseError('expected separator in list');
      list.push(this.value());
      token = this.pop();
      if (!token) throw new ParseError('premature EOI');
    }
    return list;
  }

  private keyword(): QemuValue {
    const token = this.pop()!;
    if (token.text === 'true') return true;
    if (token.text === 'false') return false;
    if (token.text === 'null') return null;
    throw new ParseError(`invalid keyword '${token.text}'`);
  }

  private literal(): QemuValue {
    const token = this.pop()!;
    if (token.type === Tok.String) return parseString(token.text);
    if (token.type === Tok.Integer) {
      const big = BigInt(token.text);
      if (big >= INT64_MIN && big <= INT64_MAX) {
        const n = Number(big);
        return Number.isSafeInteger(n) ? n : big;
      }
      if (!token.text.startsWith('-') && big <= UINT64_MAX) return big;
    }
    return new QemuFloat(Number(token.text));
  }
}

function parseString(token: string): string {
  const quote = token.charCodeAt(0);
  let out = '';
  let i = 1;
  const end = token.length - 1; // the closing quote
  while (i < end) {
    const c = token.charCodeAt(i);
    if (c === quote) break;
    if (c === 0x5c) {
      const begin = i;
      const e = token[i + 1];
      i += 2;
      switch (e) {
        case '"':
        case "'":
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          let cp = hex4(token, i);
          i += 4;
          if (cp >= 0xd800 && cp <= 0xdbff && token[i] === '\\' && token[i + 1] === 'u') {
            const trailing = hex4(token, i + 2);
            if (trailing >= 0xdc00 && trailing <= 0xdfff) {
              cp = 0x10000 + ((cp & 0x3ff) << 10) + (trailing & 0x3ff);
              i += 6;
            } else {
              cp = -1;
            }
          }
          if (!validCodePoint(cp)) {
            throw new ParseError(
              `${token.slice(begin, Math.min(i, token.length))} is not a valid Unicode character`,
            );
          }
          out += String.fromCodePoint(cp);
          break;
        }
        default:
          throw new ParseError('invalid escape sequence in string');
      }
      continue;
    }
    const cp = token.codePointAt(i)!;
    if (!validCodePoint(cp)) throw new ParseError('invalid UTF-8 sequence in string');
    const ch = String.fromCodePoint(cp);
    out += ch;
    i += ch.length;
  }
  return out;
}
