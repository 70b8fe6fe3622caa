/**
 * Reader for QAPI schema source: QEMU's JSON dialect (single-quoted strings, `#` comments,
 * `true`/`false`, no numbers or null), doc comment blocks, `include` and `pragma`
 * directives. Mirrors the lexical and directive rules of QEMU's scripts/qapi/parser.py.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { SchemaError } from '../errors.js';
import type { Pragmas, SourceLocation } from '../model/ir.js';
import type {
  ParsedSchema,
  QapiArray,
  QapiDoc,
  QapiEntry,
  QapiExpression,
  QapiObject,
  QapiSourceFile,
  QapiValue,
  ReadOptions,
} from './ast.js';
import { parseDocComment, type RawDocLine } from './doc.js';
import { type QapiRules, qapiRulesFor } from './rules.js';

type TokenType = '{' | '}' | ':' | ',' | '[' | ']' | 'string' | 'bool' | 'comment' | 'eof';

interface Token {
  readonly type: TokenType;
  /** String contents, the comment line (from `#`), or the boolean. */
  readonly value: string | boolean;
  readonly loc: SourceLocation;
}

const structural: ReadonlySet<string> = new Set(['{', '}', ':', ',', '[', ']']);

class Lexer {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly file: string,
    private readonly src: string,
  ) {}

  private locAt(pos: number): SourceLocation {
    let col = 1;
    for (let i = this.lineStart; i < pos; i++) {
      col = this.src.charCodeAt(i) === 9 ? col + 8 - ((col - 1) % 8) : col + 1;
    }
    return { file: this.file, line: this.line, col };
  }

  private fail(pos: number, message: string): never {
    throw new SchemaError(this.locAt(pos), message);
  }

  /** Reads the next token. Comments are skipped unless `keepComments` or they start with `##`. */
  next(keepComments: boolean): Token {
    const { src } = this;
    for (;;) {
      const start = this.pos;
      if (start >= src.length) return { type: 'eof', value: '', loc: this.locAt(start) };
      const ch = src[start] ?? '';
      this.pos = start + 1;
      if (ch === '#') {
        let end = src.indexOf('\n', start);
        if (end < 0) end = src.length;
        this.pos = end;
        if (keepComments || src[start + 1] === '#') {
          return { type: 'comment', value: src.slice(start, end), loc: this.locAt(start) };
        }
        continue;
      }
      if (structural.has(ch)) {
        return { type: ch as TokenType, value: ch, loc: this.locAt(start) };
      }
      if (ch === "'") return this.string(start);
      if (src.startsWith('true', start)) {
        this.pos = start + 4;
        return { type: 'bool', value: true, loc: this.locAt(start) };
      }
      if (src.startsWith('false', start)) {
        this.pos = start + 5;
        return { type: 'bool', value: false, loc: this.locAt(start) };
      }
      if (ch === '\n') {
        this.line++;
        this.lineStart = this.pos;
        continue;
      }
      if (ch === ' ' || ch === '\t' || /\s/.test(ch)) continue;
      const stray = /[^[\]{}:,\s']+/y;
      stray.lastIndex = start;
      const match = stray.exec(src);
      this.fail(start, `stray '${match ? match[0] : ch}'`);
    }
  }

  private string(start: number): Token {
    const { src } = this;
    // Fast path: printable ASCII up to the closing quote, no backslash.
    for (let i = start + 1; i < src.length; i++) {
      const code = src.charCodeAt(i);
      if (code === 39) {
        this.pos = i + 1;
        return { type: 'string', value: src.slice(start + 1, i), loc: this.locAt(start) };
      }
      if (code < 32 || code >= 127 || code === 92) break;
    }
    let out = '';
    let escaped = false;
    for (;;) {
      const at = this.pos;
      const ch = src[at];
      this.pos = at + 1;
      if (ch === undefined || ch === '\n') this.fail(start, 'missing terminating "\'"');
      if (escaped) {
        // Like QEMU, only \\ is an escape: the schema has no use for funny characters.
        if (ch !== '\\') this.fail(at - 1, `unknown escape \\${ch}`);
        escaped = false;
      } else if (ch === '\\') {
        escaped = true;
        continue;
      } else if (ch === "'") {
        return { type: 'string', value: out, loc: this.locAt(start) };
      }
      const code = ch.charCodeAt(0);
      if (code < 32 || code >= 127) this.fail(at, 'funny character in string');
      out += ch;
    }
  }
}

function tokenText(tok: Token): string {
  if (tok.type === 'eof') return 'end of file';
  if (tok.type === 'string') return 'string';
  if (tok.type === 'bool') return String(tok.value);
  if (tok.type === 'comment') return 'doc comment';
  return `'${tok.type}'`;
}

interface FileContext {
  readonly path: string;
  readonly abs: string;
  readonly module: string;
  readonly parent?: FileContext;
  readonly includedAt?: SourceLocation;
}

const errnoText: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  EPERM: 'Operation not permitted',
};

function describeReadError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code in errnoText) return errnoText[code] ?? code;
    return err.message;
  }
  return String(err);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function defaultReadFile(file: string): string {
  const bytes = readFileSync(file);
  try {
    return utf8.decode(bytes);
  } catch {
    const err = new Error('file is not valid UTF-8');
    throw err;
  }
}

interface MutablePragmas {
  docRequired: boolean;
  commandNameExceptions: string[];
  commandReturnsExceptions: string[];
  memberNameExceptions: string[];
  documentationExceptions: string[];
}

const listPragmas: Readonly<Record<string, keyof Omit<MutablePragmas, 'docRequired'>>> = {
  'command-name-exceptions': 'commandNameExceptions',
  'command-returns-exceptions': 'commandReturnsExceptions',
  'member-name-exceptions': 'memberNameExceptions',
  'documentation-exceptions': 'documentationExceptions',
};

class Reader {
  readonly files: QapiSourceFile[] = [];
  readonly expressions: QapiExpression[] = [];
  readonly docs: QapiDoc[] = [];
  readonly pragmas: MutablePragmas = {
    docRequired: false,
    commandNameExceptions: [],
    commandReturnsExceptions: [],
    memberNameExceptions: [],
    documentationExceptions: [],
  };
  private readonly included = new Set<string>();
  private readonly hash = createHash('sha256');
  private readonly mainDir: string;
  private readonly readFile: (file: string) => string;
  readonly rules: QapiRules;

  constructor(mainFile: string, options: ReadOptions) {
    this.mainDir = path.dirname(mainFile);
    this.readFile = options.readFile ?? defaultReadFile;
    this.rules = qapiRulesFor(options.qemuVersion);
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  private moduleName(file: string): string {
    const rel = path.relative(this.mainDir, file).split(path.sep).join('/');
    return rel.endsWith('.json') ? rel.slice(0, -'.json'.length) : rel;
  }

  /** Reads and parses one file (and, recursively, what it includes). */
  readFileAt(file: string, parent?: FileContext, includedAt?: SourceLocation): void {
    const abs = path.resolve(file);
    this.included.add(abs);
    const ctx: FileContext = {
      path: file,
      abs,
      module: this.moduleName(file),
      ...(parent ? { parent } : {}),
      ...(includedAt ? { includedAt } : {}),
    };
    let text: string;
    try {
      text = this.readFile(file);
    } catch (err) {
      if (includedAt) {
        throw new SchemaError(
          includedAt,
          `can't read include file '${file}': ${describeReadError(err)}`,
          {
            cause: err,
          },
        );
      }
      throw new SchemaError({ file }, `can't read schema file: ${describeReadError(err)}`, {
        cause: err,
      });
    }
    this.hash.update(text);
    this.files.push({
      path: file,
      module: ctx.module,
      ...(includedAt ? { includedFrom: includedAt } : {}),
    });
    new FileParser(this, ctx, text).parse();
  }

  include(ctx: FileContext, include: string, loc: SourceLocation): void {
    const file = path.join(path.dirname(ctx.path), include);
    const abs = path.resolve(file);
    for (let at: FileContext | undefined = ctx; at; at = at.parent) {
      if (at.abs === abs) throw new SchemaError(loc, `inclusion loop for ${include}`);
    }
    const loaded = !this.included.has(abs);
    this.expressions.push({ kind: 'include', include, path: file, loc, loaded });
    if (loaded) this.readFileAt(file, ctx, loc);
  }

  pragma(value: QapiObject): void {
    for (const entry of value.entries) {
      const { key, value: v } = entry;
      if (key === 'doc-required') {
        if (v.kind !== 'bool')
          throw new SchemaError(v.loc, "pragma 'doc-required' must be boolean");
        this.pragmas.docRequired = v.value;
        continue;
      }
      const field = listPragmas[key];
      if (!field) throw new SchemaError(entry.keyLoc, `unknown pragma '${key}'`);
      if (v.kind !== 'array' || v.items.some((item) => item.kind !== 'string')) {
        throw new SchemaError(v.loc, `pragma ${key} must be a list of strings`);
      }
      this.pragmas[field] = v.items.map((item) => (item.kind === 'string' ? item.value : ''));
    }
  }
}

const maxDepth = 256;

class FileParser {
  private readonly lexer: Lexer;
  private tok: Token;
  private depth = 0;

  constructor(
    private readonly reader: Reader,
    private readonly ctx: FileContext,
    text: string,
  ) {
    // Python reads in universal-newline mode; do the same.
    const src = text.replace(/\r\n?/g, '\n');
    this.lexer = new Lexer(ctx.path, src.endsWith('\n') ? src : `${src}\n`);
    this.tok = { type: 'eof', value: '', loc: { file: ctx.path, line: 1, col: 1 } };
  }

  private accept(keepComments = false): void {
    this.tok = this.lexer.next(keepComments);
  }

  private fail(message: string): never {
    throw new SchemaError(this.tok.loc, message);
  }

  /** The current token's type (a method, so TypeScript does not narrow across `accept`). */
  private peek(): TokenType {
    return this.tok.type;
  }

  parse(): void {
    const { reader, ctx } = this;
    let curDoc: QapiDoc | undefined;
    this.accept();
    while (this.tok.type !== 'eof') {
      if (this.tok.type === 'comment') {
        rejectExprDoc(curDoc);
        const docs = this.doc();
        reader.docs.push(...docs);
        curDoc = docs[docs.length - 1];
        continue;
      }
      const loc = this.tok.loc;
      const value = this.value();
      if (value.kind !== 'object') {
        throw new SchemaError(loc, 'top-level expression must be an object');
      }
      const include = value.byKey.get('include');
      const pragma = value.byKey.get('pragma');
      if (include) {
        rejectExprDoc(curDoc);
        if (value.entries.length !== 1) throw new SchemaError(loc, "invalid 'include' directive");
        if (include.value.kind !== 'string') {
          throw new SchemaError(include.value.loc, "value of 'include' must be a string");
        }
        reader.include(ctx, include.value.value, loc);
      } else if (pragma) {
        rejectExprDoc(curDoc);
        if (value.entries.length !== 1) throw new SchemaError(loc, "invalid 'pragma' directive");
        if (pragma.value.kind !== 'object') {
          throw new SchemaError(pragma.value.loc, "value of 'pragma' must be an object");
        }
        reader.expressions.push({ kind: 'pragma', value: pragma.value, loc });
        reader.pragma(pragma.value);
      } else {
        if (curDoc && curDoc.symbol === undefined) {
          throw new SchemaError(curDoc.loc, 'definition documentation required');
        }
        reader.expressions.push({
          kind: 'definition',
          value,
          loc,
          module: ctx.module,
          ...(curDoc ? { doc: curDoc } : {}),
        });
      }
      curDoc = undefined;
    }
    rejectExprDoc(curDoc);
  }

  private doc(): QapiDoc[] {
    const open = this.tok;
    if (open.value !== '##') this.fail("junk after '##' at start of documentation comment");
    const lines: RawDocLine[] = [];
    this.accept(true);
    while (this.tok.type === 'comment') {
      const text = String(this.tok.value);
      if (text.startsWith('##')) {
        if (text !== '##') this.fail("junk after '##' at end of documentation comment");
        const docs = parseDocComment(open.loc, lines, this.reader.rules.docIndentation);
        this.accept();
        return docs;
      }
      lines.push({ text, loc: this.tok.loc });
      this.accept(true);
    }
    return this.fail("documentation comment must end with '##'");
  }

  private value(): QapiValue {
    const tok = this.tok;
    switch (tok.type) {
      case '{':
      case '[': {
        // QEMU's recursive parser dies around this depth, too; we fail cleanly instead.
        if (++this.depth > maxDepth)
          this.fail(`expression nests too deeply (more than ${maxDepth} levels)`);
        this.accept();
        const value = tok.type === '{' ? this.object(tok.loc) : this.array(tok.loc);
        this.depth--;
        return value;
      }
      case 'string':
        this.accept();
        return { kind: 'string', value: String(tok.value), loc: tok.loc };
      case 'bool':
        this.accept();
        return { kind: 'bool', value: tok.value === true, loc: tok.loc };
      default:
        return this.fail(`expected '{', '[', string, or boolean, got ${tokenText(tok)}`);
    }
  }

  private object(loc: SourceLocation): QapiObject {
    const entries: QapiEntry[] = [];
    const byKey = new Map<string, QapiEntry>();
    const done = (): QapiObject => ({ kind: 'object', entries, byKey, loc });
    if (this.tok.type === '}') {
      this.accept();
      return done();
    }
    if (this.tok.type !== 'string') this.fail(`expected string or '}', got ${tokenText(this.tok)}`);
    for (;;) {
      const keyTok = this.tok;
      const key = String(keyTok.value);
      this.accept();
      if (this.peek() !== ':') this.fail(`expected ':', got ${tokenText(this.tok)}`);
      this.accept();
      if (byKey.has(key)) throw new SchemaError(keyTok.loc, `duplicate key '${key}'`);
      const entry: QapiEntry = { key, keyLoc: keyTok.loc, value: this.value() };
      entries.push(entry);
      byKey.set(key, entry);
      if (this.peek() === '}') {
        this.accept();
        return done();
      }
      if (this.peek() !== ',') this.fail(`expected ',' or '}', got ${tokenText(this.tok)}`);
      this.accept();
      if (this.peek() !== 'string') this.fail(`expected string, got ${tokenText(this.tok)}`);
    }
  }

  private array(loc: SourceLocation): QapiArray {
    const items: QapiValue[] = [];
    if (this.tok.type === ']') {
      this.accept();
      return { kind: 'array', items, loc };
    }
    if (!['{', '[', 'string', 'bool'].includes(this.tok.type)) {
      this.fail(`expected '{', '[', ']', string, or boolean, got ${tokenText(this.tok)}`);
    }
    for (;;) {
      items.push(this.value());
      if (this.peek() === ']') {
        this.accept();
        return { kind: 'array', items, loc };
      }
      if (this.tok.type !== ',') this.fail(`expected ',' or ']', got ${tokenText(this.tok)}`);
      this.accept();
    }
  }
}

function rejectExprDoc(doc: QapiDoc | undefined): void {
  if (doc?.symbol !== undefined) {
    throw new SchemaError(
      doc.loc,
      `documentation for '${doc.symbol}' is not followed by the definition`,
    );
  }
}

function freezePragmas(p: MutablePragmas): Pragmas {
  return {
    docRequired: p.docRequired,
    commandNameExceptions: [...p.commandNameExceptions],
    commandReturnsExceptions: [...p.commandReturnsExceptions],
    memberNameExceptions: [...p.memberNameExceptions],
    documentationExceptions: [...p.documentationExceptions],
  };
}

/**
 * Reads a QAPI schema file and everything it includes. Checks the syntax, directives and
 * doc comment structure; the definitions themselves are checked by `loadQapiSource`.
 *
 * @throws SchemaError (`file:line:col: message`) at the first problem.
 */
export function parseQapiFile(mainFile: string, options: ReadOptions = {}): ParsedSchema {
  const reader = new Reader(mainFile, options);
  reader.readFileAt(mainFile);
  return {
    mainFile,
    files: reader.files,
    expressions: reader.expressions,
    docs: reader.docs,
    pragmas: freezePragmas(reader.pragmas),
    sha256: reader.digest(),
    rules: reader.rules,
  };
}
