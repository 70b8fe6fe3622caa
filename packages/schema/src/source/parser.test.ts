import { describe, expect, it } from 'vitest';
import { isSchemaError } from '../errors.js';
import type { ParsedSchema, QapiValue, ReadOptions } from './ast.js';
import { loadQapiSource, parseQapiFile } from './index.js';

/** An in-memory file set for `readFile`. */
function files(map: Readonly<Record<string, string>>): Required<Pick<ReadOptions, 'readFile'>> {
  return {
    readFile: (file) => {
      const text = map[file];
      if (text === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      return text;
    },
  };
}

const parse = (text: string): ParsedSchema => parseQapiFile('t.json', files({ 't.json': text }));

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isSchemaError(err)) return err.message;
    throw err;
  }
  throw new Error('no error');
}

/** Plain JS view of a parsed value. */
function plain(value: QapiValue): unknown {
  switch (value.kind) {
    case 'string':
    case 'bool':
      return value.value;
    case 'array':
      return value.items.map(plain);
    case 'object':
      return Object.fromEntries(value.entries.map((e) => [e.key, plain(e.value)]));
  }
}

function firstValue(parsed: ParsedSchema): QapiValue {
  const expr = parsed.expressions[0];
  if (expr?.kind !== 'definition') throw new Error('no definition');
  return expr.value;
}

describe('QAPI JSON dialect', () => {
  it('reads nested objects, arrays, strings and booleans', () => {
    const parsed = parse(
      "{ 'command': 'x', 'data': { 'a': [ 'int' ], 'b': { 'type': 'str', 'if': { 'not': 'C' } } },\n" +
        "  'boxed': false, 'gen': true, 'list': [ [], {}, true, 'a\\\\b' ] }",
    );
    expect(plain(firstValue(parsed))).toEqual({
      command: 'x',
      data: { a: ['int'], b: { type: 'str', if: { not: 'C' } } },
      boxed: false,
      gen: true,
      list: [[], {}, true, 'a\\b'],
    });
  });

  it('skips comments, also inside expressions, and reads a last line without newline', () => {
    const parsed = parse("# leading\n{ 'enum': 'E', # trailing\n  # own line\n  'data': [] }");
    expect(plain(firstValue(parsed))).toEqual({ enum: 'E', data: [] });
  });

  it('tracks lines and columns, expanding tabs to multiples of eight', () => {
    const parsed = parse("\n\n  {\t'enum': 'E',\n\t'data': [] }\n");
    const value = firstValue(parsed);
    expect(value.loc).toEqual({ file: 't.json', line: 3, col: 3 });
    expect(value.kind === 'object' && value.entries.map((e) => e.keyLoc)).toEqual([
      { file: 't.json', line: 3, col: 9 },
      { file: 't.json', line: 4, col: 9 },
    ]);
  });

  it('treats CRLF line ends like LF', () => {
    const parsed = parse("# x\r\n{ 'enum': 'E',\r\n  'data': [ 'a' ] }\r\n");
    const value = firstValue(parsed);
    expect(value.kind === 'object' && value.entries[1]?.keyLoc).toEqual({
      file: 't.json',
      line: 3,
      col: 3,
    });
  });

  it('rejects a doc comment inside an expression', () => {
    expect(message(() => parse("{ 'enum': 'E',\n##\n 'data': [] }"))).toBe(
      't.json:2:1: expected string, got doc comment',
    );
  });

  it('rejects numbers, null and bare words with the offending text', () => {
    expect(message(() => parse("{ 'a': null }"))).toBe("t.json:1:8: stray 'null'");
    expect(message(() => parse("{ 'a': -1.5e3 }"))).toBe("t.json:1:8: stray '-1.5e3'");
    expect(message(() => parse("{ 'a': 'b' }\n{ 'a' : truex }"))).toBe("t.json:2:13: stray 'x'");
  });

  it('rejects empty array slots and trailing commas', () => {
    expect(message(() => parse("{ 'a': [ , ] }"))).toBe(
      "t.json:1:10: expected '{', '[', ']', string, or boolean, got ','",
    );
    expect(message(() => parse("{ 'a': [ 'b', ] }"))).toBe(
      "t.json:1:15: expected '{', '[', string, or boolean, got ']'",
    );
    expect(message(() => parse("{ 'a': 'b', }"))).toBe("t.json:1:13: expected string, got '}'");
  });

  it('fails cleanly on absurdly deep nesting instead of overflowing the stack', () => {
    const deep = `{ 'a': ${'['.repeat(100_000)}${']'.repeat(100_000)} }`;
    expect(message(() => parse(deep))).toBe(
      't.json:1:263: expression nests too deeply (more than 256 levels)',
    );
  });

  it('reports an unterminated string at its opening quote', () => {
    expect(message(() => parse("{ 'a': 'b }"))).toBe('t.json:1:8: missing terminating "\'"');
    expect(message(() => parse("{ 'a': 'b"))).toBe('t.json:1:8: missing terminating "\'"');
  });

  it('reports a bad character inside a string where it is', () => {
    expect(message(() => parse("{ 'a': 'b\tc' }"))).toBe('t.json:1:10: funny character in string');
  });
});

describe('include and pragma directives', () => {
  it('resolves includes relative to the including file and reads each file once', () => {
    const parsed = parseQapiFile(
      'top/main.json',
      files({
        'top/main.json': "{ 'include': 'sub/a.json' }\n{ 'include': 'b.json' }",
        'top/sub/a.json': "{ 'include': '../b.json' }\n{ 'enum': 'A', 'data': [] }",
        'top/b.json': "{ 'enum': 'B', 'data': [] }",
      }),
    );
    expect(parsed.files.map((f) => [f.path, f.module])).toEqual([
      ['top/main.json', 'main'],
      ['top/sub/a.json', 'sub/a'],
      ['top/b.json', 'b'],
    ]);
    const defs = parsed.expressions.filter((e) => e.kind === 'definition');
    expect(defs.map((e) => [e.module, e.kind === 'definition' && plain(e.value)])).toEqual([
      ['b', { enum: 'B', data: [] }],
      ['sub/a', { enum: 'A', data: [] }],
    ]);
  });

  it('detects a file including itself', () => {
    expect(message(() => parse("\n{ 'include': 't.json' }"))).toBe(
      't.json:2:1: inclusion loop for t.json',
    );
  });

  it('applies pragmas globally, the last value of each winning', () => {
    const schema = loadQapiSource(
      'm.json',
      files({
        'm.json':
          "{ 'include': 'p.json' }\n{ 'command': 'a_b' }\n" +
          "{ 'pragma': { 'command-name-exceptions': [ 'a_b', 'c_d' ] } }",
        'p.json': "{ 'pragma': { 'command-name-exceptions': [ 'x_y' ] } }",
      }),
    );
    expect(schema.pragmas?.commandNameExceptions).toEqual(['a_b', 'c_d']);
    expect(schema.commands.has('a_b')).toBe(true);
  });

  it('attaches the definition doc to the expression and keeps free-form docs apart', () => {
    const parsed = parse(
      "##\n# = Title\n##\n\n##\n# @E:\n#\n# Text.\n##\n\n{ 'enum': 'E', 'data': [] }\n",
    );
    const expr = parsed.expressions[0];
    expect(expr?.kind === 'definition' && expr.doc?.symbol).toBe('E');
    expect(parsed.docs.map((d) => d.symbol)).toEqual([undefined, 'E']);
  });

  it('accepts blank lines inside a doc comment, like QEMU', () => {
    const parsed = parse("##\n# @E:\n\n# Text.\n##\n{ 'enum': 'E', 'data': [] }\n");
    expect(parsed.docs[0]?.sections[0]?.text).toBe('Text.');
  });
});
