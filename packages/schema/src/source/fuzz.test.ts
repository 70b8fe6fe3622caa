/**
 * Robustness: whatever the input, the reader either returns a schema or throws a
 * `SchemaError` with a location — never a TypeError, RangeError or a hang.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSchemaError } from '../errors.js';
import { loadQapiSource } from './index.js';

const valid = readFileSync(
  fileURLToPath(
    new URL('../../../../test/fixtures/qapi/valid/schema/sub/devices.json', import.meta.url),
  ),
  'utf8',
);
const docs = readFileSync(
  fileURLToPath(
    new URL('../../../../test/fixtures/qapi/valid/docs-7.2-style.json', import.meta.url),
  ),
  'utf8',
);

/** Loads `main.json` from an in-memory file set; a missing file reads like ENOENT. */
function attempt(files: Readonly<Record<string, string>>): void {
  const readFile = (file: string): string => {
    const text = files[file];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
    return text;
  };
  try {
    loadQapiSource('main.json', { readFile });
  } catch (err) {
    if (!isSchemaError(err)) throw err;
    expect(err.message).toMatch(/^[^:]+\.json(:\d+:\d+)?: ./);
  }
}

const pieces = [
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  "'",
  '#',
  '##',
  '\n',
  ' ',
  '\t',
  '\\',
  'true',
  'false',
  '@',
  '*',
  "'enum'",
  "'struct'",
  "'union'",
  "'alternate'",
  "'command'",
  "'event'",
  "'data'",
  "'base'",
  "'discriminator'",
  "'include'",
  "'pragma'",
  "'if'",
  "'features'",
  "'boxed'",
  "'returns'",
  "'Foo'",
  "'foo'",
  "'str'",
  "'int'",
  "'main.json'",
  "'other.json'",
  '# @Foo:\n',
  '# Since: 1.0\n',
  '# Features:\n',
  '# @x: text\n',
  'é',
];

/** Mostly ASCII (so structure appears now and then), sometimes any UTF-16 code unit. */
const randomText = fc.string({
  unit: fc
    .oneof(
      { arbitrary: fc.integer({ min: 0, max: 127 }), weight: 8 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
    )
    .map((code) => String.fromCharCode(code)),
  maxLength: 200,
});

const tokenSoup = fc.array(fc.constantFrom(...pieces), { maxLength: 60 }).map((p) => p.join(''));

/** A random (mostly well-formed) QAPI value, serialized in QAPI's dialect. */
const { value: qapiValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(
      "'Foo'",
      "'Bar'",
      "'foo'",
      "'str'",
      "'int'",
      "'CONFIG_X'",
      "'*opt'",
      "'kind'",
      'true',
      'false',
    ),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => `[ ${items.join(', ')} ]`),
    fc
      .uniqueArray(
        fc.tuple(
          fc.constantFrom(
            'enum',
            'struct',
            'union',
            'alternate',
            'command',
            'event',
            'data',
            'base',
            'discriminator',
            'if',
            'features',
            'boxed',
            'returns',
            'type',
            'name',
            'all',
            'any',
            'not',
            'kind',
            '*opt',
            'Foo',
          ),
          tie('value'),
        ),
        { selector: ([key]) => key, maxLength: 4 },
      )
      .map((entries) => `{ ${entries.map(([k, v]) => `'${k}': ${v}`).join(', ')} }`),
  ),
}));

const expressions = fc.array(qapiValue, { maxLength: 6 }).map((values) => values.join('\n'));

/** Random definitions that are mostly well-formed, to reach the semantic checks. */
const typeName = fc.constantFrom('Foo', 'Bar', 'Baz', 'Kind', 'Foo-bar', 'FooArguments', 'QType');
const anyName = fc.oneof(
  typeName,
  fc.constantFrom('foo', 'x-foo', 'FOO', 'str', 'int', 'any', 'null'),
);
const quoted = (s: string) => `'${s}'`;
const typeRef = fc.oneof(
  anyName.map(quoted),
  anyName.map((n) => `[ '${n}' ]`),
  fc.constant("[ [ 'int' ] ]"),
);
const cond = fc.constantFrom(
  "'CONFIG_A'",
  "{ 'not': 'CONFIG_B' }",
  "{ 'all': [ 'CONFIG_A', 'CONFIG_B' ] }",
);
const memberKey = fc.constantFrom(
  'kind',
  '*kind',
  'x',
  '*y',
  'data',
  'type',
  'a-b',
  'a_b',
  'has-x',
  'Upper',
);
const member = fc.oneof(
  typeRef,
  fc
    .tuple(typeRef, fc.option(cond), fc.option(fc.constantFrom("[ 'deprecated' ]", "[ 'fancy' ]")))
    .map(
      ([type, c, f]) =>
        `{ 'type': ${type}${c ? `, 'if': ${c}` : ''}${f ? `, 'features': ${f}` : ''} }`,
    ),
);
const members = fc
  .uniqueArray(fc.tuple(memberKey, member), { selector: ([k]) => k, maxLength: 4 })
  .map((entries) => `{ ${entries.map(([k, v]) => `'${k}': ${v}`).join(', ')} }`);
const branchKey = fc.constantFrom('a', 'b', 'c', 'kind');
const branches = fc
  .uniqueArray(
    fc.tuple(
      branchKey,
      fc.oneof(
        typeRef,
        typeRef.map((t) => `{ 'type': ${t} }`),
      ),
    ),
    {
      selector: ([k]) => k,
      maxLength: 3,
    },
  )
  .map((entries) => `{ ${entries.map(([k, v]) => `'${k}': ${v}`).join(', ')} }`);
const extra = fc.option(
  fc.constantFrom(
    ", 'boxed': true",
    ", 'if': 'CONFIG_A'",
    ", 'features': [ 'unstable' ]",
    ", 'features': [ 'deprecated' ]",
    ", 'gen': false",
    ", 'allow-oob': true",
  ),
  { nil: '' },
);
const definition = fc.oneof(
  fc
    .tuple(
      typeName,
      fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'on', '1x', 'a-b', 'a_b')),
      extra,
    )
    .map(([n, vals, e]) => `{ 'enum': '${n}', 'data': [ ${vals.map(quoted).join(', ')} ]${e} }`),
  fc
    .tuple(typeName, members, fc.option(typeName), extra)
    .map(([n, m, b, e]) => `{ 'struct': '${n}', 'data': ${m}${b ? `, 'base': '${b}'` : ''}${e} }`),
  fc
    .tuple(typeName, fc.oneof(typeName.map(quoted), members), branches, extra)
    .map(
      ([n, b, d, e]) =>
        `{ 'union': '${n}', 'base': ${b}, 'discriminator': 'kind', 'data': ${d}${e} }`,
    ),
  fc.tuple(typeName, branches).map(([n, d]) => `{ 'union': '${n}', 'data': ${d} }`),
  fc
    .tuple(typeName, branches, extra)
    .map(([n, d, e]) => `{ 'alternate': '${n}', 'data': ${d}${e} }`),
  fc
    .tuple(anyName, fc.option(fc.oneof(typeName.map(quoted), members)), fc.option(typeRef), extra)
    .map(
      ([n, d, r, e]) =>
        `{ 'command': '${n}'${d ? `, 'data': ${d}` : ''}${r ? `, 'returns': ${r}` : ''}${e} }`,
    ),
  fc
    .tuple(anyName, fc.option(fc.oneof(typeName.map(quoted), members)), extra)
    .map(([n, d, e]) => `{ 'event': '${n}'${d ? `, 'data': ${d}` : ''}${e} }`),
);
const definitions = fc.array(definition, { maxLength: 6 }).map((defs) => defs.join('\n'));

/** Random edits of a valid file: delete, insert or replace a few characters. */
function mutate(text: string) {
  return fc
    .array(fc.tuple(fc.nat({ max: text.length }), fc.nat({ max: 3 }), fc.constantFrom(...pieces)), {
      minLength: 1,
      maxLength: 4,
    })
    .map((edits) => {
      let out = text;
      for (const [at, remove, insert] of edits) {
        const pos = Math.min(at, out.length);
        out = out.slice(0, pos) + insert + out.slice(pos + remove);
      }
      return out;
    });
}

describe('robustness against random input', () => {
  it('token soup', () => {
    fc.assert(
      fc.property(tokenSoup, tokenSoup, (main, other) =>
        attempt({ 'main.json': main, 'other.json': other }),
      ),
      { numRuns: 400 },
    );
  });

  it('arbitrary strings', () => {
    fc.assert(
      fc.property(randomText, (main) => attempt({ 'main.json': main })),
      { numRuns: 300 },
    );
  });

  it('random QAPI expressions', () => {
    fc.assert(
      fc.property(expressions, (main) => attempt({ 'main.json': main })),
      { numRuns: 400 },
    );
  });

  it('random QAPI definitions', () => {
    fc.assert(
      fc.property(definitions, (main) => attempt({ 'main.json': main })),
      { numRuns: 1000 },
    );
  });

  it('mutated valid schemas', () => {
    fc.assert(
      fc.property(fc.oneof(mutate(valid), mutate(docs)), (main) => attempt({ 'main.json': main })),
      { numRuns: 300 },
    );
  });

  it('includes between random files, including cycles and missing files', () => {
    const include = fc
      .constantFrom('main.json', 'a.json', 'b.json', 'missing.json')
      .map((f) => `{ 'include': '${f}' }`);
    const file = fc.array(fc.oneof(include, qapiValue), { maxLength: 4 }).map((v) => v.join('\n'));
    fc.assert(
      fc.property(file, file, file, (main, a, b) =>
        attempt({ 'main.json': main, 'a.json': a, 'b.json': b }),
      ),
      { numRuns: 300 },
    );
  });

  it('bounds base chains instead of running out of stack or memory', () => {
    let forward = "{ 'struct': 'Ta0', 'data': {} }\n";
    let backward = '';
    for (let i = 1; i <= 5000; i++) {
      forward += `{ 'struct': 'Ta${i}', 'base': 'Ta${i - 1}', 'data': { 'm${i}': 'int' } }\n`;
      backward += `{ 'struct': 'Tb${i}', 'base': 'Tb${i + 1}', 'data': { 'm${i}': 'int' } }\n`;
    }
    backward += "{ 'struct': 'Tb5001', 'data': {} }\n";
    expect(() => loadQapiSource('main.json', { readFile: () => forward })).toThrow(
      "main.json:501:1: struct 'Ta500' has more than 500 levels of base types",
    );
    expect(() => loadQapiSource('main.json', { readFile: () => backward })).toThrow(
      "main.json:501:1: struct 'Tb501' nests bases and branches more than 500 levels deep",
    );
  });
});
