/**
 * QEMU 7.2's JSON *parser* for one message, with its error texts: single-quoted strings and
 * `\'`, duplicate keys, invalid `\u` escapes and noncharacters are errors, integers stay
 * exact up to 64 bits, numbers with a fraction or exponent are doubles.
 *
 * Framing (where a message ends, lexical errors, QEMU's per-message limits) is not done
 * here: the shared codec's stream framing (`QmpDecoder` with `framing: 'stream'`) splits the
 * input exactly like QEMU's lexer and streamer and hands over one lexically valid message,
 * which this module tokenises again and parses. This is the slow path of the fake's input:
 * ordinary commands are parsed by `JSON.parse` (see `input.ts`). Written from QEMU's
 * documented behaviour and measurements of `qemu-system-x86_64` 7.2; no QEMU code.
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

interface Token {
  readonly type: Tok;
  readonly text: string;
}

/** A message QEMU's parser refuses; `desc` is QEMU's reply text. */
export class QemuJsonParseError extends Error {
  override readonly name = 'QemuJsonParseError' as const;
  constructor(readonly desc: string) {
    super(desc);
  }
}

const PUNCT: Record<string, Tok> = {
  '{': Tok.LCurly,
  '}': Tok.RCurly,
  '[': Tok.LSquare,
  ']': Tok.RSquare,
  ':': Tok.Colon,
  ',': Tok.Comma,
};

/**
 * Tokens of one message the codec's splitter accepted (lexically valid: strings closed,
 * numbers well formed, keywords lower-case letters).
 */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const ch = text[i]!;
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
      i++;
      continue;
    }
    const punct = PUNCT[ch];
    if (punct !== undefined) {
      tokens.push({ type: punct, text: ch });
      i++;
      continue;
    }
    let j = i + 1;
    if (ch === '"' || ch === "'") {
      while (j < n && text[j] !== ch) j += text[j] === '\\' ? 2 : 1;
      tokens.push({ type: Tok.String, text: text.slice(i, j + 1) });
      i = j + 1;
      continue;
    }
    if (c >= 0x61 && c <= 0x7a) {
      while (j < n && text.charCodeAt(j) >= 0x61 && text.charCodeAt(j) <= 0x7a) j++;
      tokens.push({ type: Tok.Keyword, text: text.slice(i, j) });
      i = j;
      continue;
    }
    // A number, as QEMU's lexer ends it: -?digits(.digits)?([eE][+-]?digits)?
    const digits = () => {
      while (j < n && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
    };
    let float = false;
    digits();
    if (text[j] === '.') {
      float = true;
      j++;
      digits();
    }
    if (text[j] === 'e' || text[j] === 'E') {
      float = true;
      j++;
      if (text[j] === '+' || text[j] === '-') j++;
      digits();
    }
    tokens.push({ type: float ? Tok.Float : Tok.Integer, text: text.slice(i, j) });
    i = j;
  }
  return tokens;
}

/**
 * Parses one message (as framed by the codec) like QEMU 7.2; throws `QemuJsonParseError`
 * with QEMU's text (`JSON parse error, …`).
 */
export function parseQemuJson(text: string): QemuValue {
  const result = readQemuJson(text);
  if ('error' in result) throw new QemuJsonParseError(result.error);
  return result.value;
}

/** `parseQemuJson` without exceptions: the value, or QEMU's error text. */
export function readQemuJson(text: string): { value: QemuValue } | { error: string } {
  try {
    return { value: new Parser(tokenize(text)).parse() };
  } catch (error) {
    if (error instanceof ParseError) return { error: `JSON parse error, ${error.message}` };
    throw error;
  }
}

/** QEMU's text for a lexical error (the token is printed as a C string: it ends at NUL). */
export function strayText(token: string): string {
  const nul = token.indexOf('\u0000');
  return `JSON parse error, stray '${nul < 0 ? token : token.slice(0, nul)}'`;
}

/**
 * Thrown inside the parser and caught by `readQemuJson`. Not an `Error`: garbage input makes
 * one per message, and capturing a stack trace each time made 512 KiB of garbage cost seconds.
 */
class ParseError {
  constructor(readonly message: string) {}
}

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
