import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isSchemaError, SchemaError } from '../errors.js';
import { loadQapiSource } from './index.js';

const fixtures = fileURLToPath(new URL('../../../../test/fixtures/qapi/invalid/', import.meta.url));

/** Reads fixtures relative to the invalid-fixture folder, so messages carry short paths. */
const readFile = (file: string): string => readFileSync(path.join(fixtures, file), 'utf8');

function errorOf(fixture: string): SchemaError {
  try {
    loadQapiSource(`${fixture}.json`, { readFile });
  } catch (err) {
    if (isSchemaError(err)) return err as SchemaError;
    throw err;
  }
  throw new Error(`${fixture}.json was accepted`);
}

/** One fixture per error class; the expected message is exact (`file:line:col: text`). */
const cases: ReadonlyArray<readonly [fixture: string, message: string]> = [
  ['alternate-any', "alternate-any.json:1:38: branch 'value' cannot use built-in type 'any'"],
  ['alternate-empty', "alternate-empty.json:1:32: 'data' must not be empty"],
  [
    'alternate-indistinguishable',
    "alternate-indistinguishable.json:1:50: branch 'fraction' can't be distinguished from 'bytes'",
  ],
  [
    'alternate-string-and-bool',
    "alternate-string-and-bool.json:2:50: branch 'name' can't be distinguished from 'on'",
  ],
  [
    'array-of-array',
    "array-of-array.json:1:41: member 'rows': array type must contain single type name",
  ],
  ['bad-quote', 'bad-quote.json:2:3: stray \'"enum"\''],
  ['base-array', "base-array.json:2:31: 'base' cannot be an array"],
  ['base-cycle', 'base-cycle.json:1:1: object Egg contains itself'],
  [
    'base-not-struct',
    "base-not-struct.json:2:30: 'base' requires a struct type, enum 'Colour' isn't",
  ],
  ['boxed-inline-data', "boxed-inline-data.json:1:30: 'data' should be a type name"],
  ['boxed-without-data', "boxed-without-data.json:1:1: 'boxed': true requires 'data'"],
  [
    'builtin-redefined',
    "builtin-redefined.json:1:1: 'QType' is already defined as a built-in type",
  ],
  [
    'command-data-union-not-boxed',
    "command-data-union-not-boxed.json:5:30: command's 'data' can take union 'Shape' only with 'boxed': true",
  ],
  [
    'command-name-underscore',
    "command-name-underscore.json:1:14: name of command 'do_reset' must not use uppercase or '_'",
  ],
  [
    'conditional-arguments-not-boxed',
    "conditional-arguments-not-boxed.json:2:11: conditional command arguments require 'boxed': true",
  ],
  ['doc-duplicate-member', "doc-duplicate-member.json:5:3: 'x' parameter name duplicated"],
  ['doc-duplicate-since', "doc-duplicate-since.json:6:3: duplicated 'Since' section"],
  ['doc-empty-section', "doc-empty-section.json:4:3: text required after 'Since:'"],
  [
    'doc-feature-undocumented',
    "doc-feature-undocumented.json:7:49: feature 'fuzzy' lacks documentation",
  ],
  ['doc-features-empty', 'doc-features-empty.json:4:3: feature descriptions expected'],
  [
    'doc-free-form-before-definition',
    'doc-free-form-before-definition.json:1:1: definition documentation required',
  ],
  [
    'doc-free-form-member',
    "doc-free-form-member.json:4:3: '@Point:' not allowed in free-form documentation",
  ],
  [
    'doc-heading-in-definition',
    "doc-heading-in-definition.json:3:3: unexpected '=' markup in definition documentation",
  ],
  [
    'doc-junk-after-start',
    "doc-junk-after-start.json:1:1: junk after '##' at start of documentation comment",
  ],
  [
    'doc-member-after-section',
    "doc-member-after-section.json:8:3: description of '@y:' follows a section",
  ],
  [
    'doc-member-does-not-exist',
    "doc-member-does-not-exist.json:5:3: documented member 'z' does not exist",
  ],
  ['doc-missing-space', 'doc-missing-space.json:4:1: missing space after #'],
  [
    'doc-not-followed-by-definition',
    "doc-not-followed-by-definition.json:2:1: documentation for 'Colour' is not followed by the definition",
  ],
  ['doc-required', "doc-required.json:4:1: documentation comment required for enum 'Colour'"],
  [
    'doc-returns-not-command',
    "doc-returns-not-command.json:4:3: 'Returns' section is only valid for commands",
  ],
  ['doc-symbol-line-no-colon', "doc-symbol-line-no-colon.json:2:3: line should end with ':'"],
  ['doc-unterminated', "doc-unterminated.json:5:1: documentation comment must end with '##'"],
  ['doc-wrong-symbol', "doc-wrong-symbol.json:6:1: documentation comment is for 'Color'"],
  [
    'duplicate-definition',
    "duplicate-definition.json:2:1: 'Colour' is already defined (duplicate-definition.json:1:1)",
  ],
  ['duplicate-key', "duplicate-key.json:4:3: duplicate key 'data'"],
  ['enum-data-not-array', "enum-data-not-array.json:1:29: 'data' must be an array"],
  ['enum-value-duplicate', "enum-value-duplicate.json:1:47: value 'red' collides with value 'red'"],
  ['enum-value-invalid', "enum-value-invalid.json:1:38: value 'light green' has an invalid name"],
  ['event-data-enum', "event-data-enum.json:2:38: event's 'data' cannot take enum 'Colour'"],
  [
    'event-name-lowercase',
    "event-name-lowercase.json:1:12: name of event 'Reset_Done' must not use lowercase or '-'",
  ],
  [
    'feature-duplicate',
    "feature-duplicate.json:1:56: feature 'fuzzy' collides with feature 'fuzzy'",
  ],
  ['features-not-array', "features-not-array.json:1:46: 'features' must be an array"],
  ['flag-not-bool', "flag-not-bool.json:1:36: flag 'allow-oob' may only use true value"],
  ['flag-wrong-value', "flag-wrong-value.json:1:30: flag 'gen' may only use false value"],
  [
    'flags-incompatible',
    "flags-incompatible.json:1:1: flags 'allow-oob' and 'coroutine' are incompatible",
  ],
  ['funny-character', 'funny-character.json:2:45: funny character in string'],
  [
    'if-conflicting-keys',
    "if-conflicting-keys.json:2:9: 'if' condition of struct 'Point' must have exactly one of 'all', 'any', 'not'",
  ],
  ['if-empty-all', "if-empty-all.json:1:49: 'if' condition [] of struct 'Point' is useless"],
  [
    'if-not-identifier',
    "if-not-identifier.json:1:40: 'if' condition 'defined(CONFIG_POINT)' of struct 'Point' is not a valid identifier",
  ],
  [
    'implicit-name-clash-two-implicit',
    "implicit-name-clash-two-implicit.json:4:35: implicit struct 'ResetAllArguments' for the arguments of command 'reset_all' clashes with implicit struct 'ResetAllArguments' for the arguments of command 'reset-all' (implicit-name-clash-two-implicit.json:3:35)",
  ],
  [
    'implicit-name-clash',
    "implicit-name-clash.json:3:30: implicit struct 'MoveArguments' for the arguments of command 'move' clashes with struct 'MoveArguments' (implicit-name-clash.json:2:1)",
  ],
  ['include-cycle', 'include-cycle-b.json:3:1: inclusion loop for include-cycle.json'],
  ['include-extra-key', "include-extra-key.json:2:1: invalid 'include' directive"],
  [
    'include-missing',
    "include-missing.json:2:1: can't read include file 'include-missing-nowhere.json': No such file or directory",
  ],
  ['include-not-string', "include-not-string.json:2:14: value of 'include' must be a string"],
  [
    'legacy-union-kind-clash',
    "legacy-union-kind-clash.json:3:1: implicit enum 'ValueKind' for the branch enum of union 'Value' clashes with enum 'ValueKind' (legacy-union-kind-clash.json:2:1)",
  ],
  [
    'member-c-name-clash',
    "member-c-name-clash.json:3:52: member 'top_left' collides with member 'top-left' of type 'Window'",
  ],
  ['member-inline-struct', "member-inline-struct.json:1:39: member 'from' misses key 'type'"],
  ['member-name-q-prefix', "member-name-q-prefix.json:1:32: member 'q-x' has an invalid name"],
  ['member-name-reserved', "member-name-reserved.json:1:32: member 'has-x' uses reserved name"],
  [
    'member-name-uppercase',
    "member-name-uppercase.json:1:32: name of member 'X' must not use uppercase or '_'",
  ],
  ['missing-colon', "missing-colon.json:2:12: expected ':', got string"],
  ['missing-comma', "missing-comma.json:3:3: expected ',' or '}', got string"],
  ['missing-data', "missing-data.json:1:1: struct 'Point' misses key 'data'"],
  [
    'missing-meta',
    "missing-meta.json:1:1: expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
  ],
  ['name-not-string', "name-not-string.json:1:11: 'enum' requires a string name"],
  ['non-string-key', "non-string-key.json:2:3: expected string or '}', got true"],
  [
    'pragma-doc-required-not-bool',
    "pragma-doc-required-not-bool.json:2:31: pragma 'doc-required' must be boolean",
  ],
  [
    'pragma-list-not-strings',
    'pragma-list-not-strings.json:2:42: pragma command-name-exceptions must be a list of strings',
  ],
  ['pragma-unknown', "pragma-unknown.json:2:38: unknown pragma 'frobnicate'"],
  ['returns-inline', "returns-inline.json:1:34: 'returns' should be a type name"],
  [
    'returns-not-object',
    "returns-not-object.json:1:34: command's 'returns' cannot take built-in type 'int'",
  ],
  [
    'special-feature-on-type',
    "special-feature-on-type.json:1:48: feature 'deprecated' is not supported for types",
  ],
  ['stray-number', "stray-number.json:2:38: stray '42'"],
  [
    'struct-member-clashes-with-base',
    "struct-member-clashes-with-base.json:3:25: member 'y' collides with member 'y' of type 'Point'",
  ],
  ['top-level-not-object', 'top-level-not-object.json:2:1: top-level expression must be an object'],
  ['trailing-garbage', "trailing-garbage.json:2:41: stray 'garbage'"],
  [
    'two-metas',
    "two-metas.json:1:1: expression must have exactly one key 'enum', 'struct', 'union', 'alternate', 'command', 'event'",
  ],
  [
    'type-name-ends-in-list',
    "type-name-ends-in-list.json:1:13: struct name 'PointList' should not end in 'List'",
  ],
  [
    'type-name-not-camel',
    "type-name-not-camel.json:1:13: name of struct 'point' must use CamelCase",
  ],
  ['unclosed-object', 'unclosed-object.json:3:1: expected string, got end of file'],
  [
    'union-base-is-union',
    "union-base-is-union.json:5:30: 'base' requires a struct type, union 'Shape' isn't",
  ],
  [
    'union-base-without-discriminator',
    "union-base-without-discriminator.json:2:29: 'base' requires 'discriminator'",
  ],
  [
    'union-branch-member-clash',
    "union-branch-member-clash.json:6:13: branch 'circle': member 'kind' of type 'Circle' collides with base member 'kind' of union 'Shape'",
  ],
  [
    'union-branch-not-enum-value',
    "union-branch-not-enum-value.json:6:33: branch 'square' is not a value of enum 'Form'",
  ],
  [
    'union-branch-not-struct',
    "union-branch-not-struct.json:6:40: branch 'dot' cannot use built-in type 'int'",
  ],
  ['union-contains-itself', 'union-contains-itself.json:3:1: object Recursion contains itself'],
  [
    'union-discriminator-conditional',
    "union-discriminator-conditional.json:5:20: discriminator member 'kind' of 'base' must not be conditional",
  ],
  [
    'union-discriminator-not-enum',
    "union-discriminator-not-enum.json:4:20: discriminator member 'kind' of 'base' must be of enum type",
  ],
  [
    'union-discriminator-not-member',
    "union-discriminator-not-member.json:5:20: discriminator 'type' is not a member of 'base'",
  ],
  [
    'union-discriminator-optional',
    "union-discriminator-optional.json:5:20: discriminator member 'kind' of 'base' must not be optional",
  ],
  ['union-no-branches', "union-no-branches.json:2:1: union 'Void' has no branches"],
  ['unknown-escape', 'unknown-escape.json:2:35: unknown escape \\n'],
  [
    'unknown-top-level-key',
    "unknown-top-level-key.json:3:3: struct 'Point' has unknown key 'colour' (valid keys are 'base', 'data', 'features', 'if', 'struct')",
  ],
  ['unknown-type', "unknown-type.json:1:49: member 'y' uses unknown type 'Integer'"],
  ['unterminated-string', 'unterminated-string.json:3:13: missing terminating "\'"'],
];

describe('invalid QAPI schemas', () => {
  it.each(cases)('%s', (fixture, message) => {
    const err = errorOf(fixture);
    expect(err).toBeInstanceOf(SchemaError);
    expect(err.message).toBe(message);
    expect(`${err.file}:${err.line}:${err.col}: ${err.reason}`).toBe(message);
  });

  it('has a case for every fixture and at least 40 of them', () => {
    const helpers = new Set(['include-cycle-b']);
    const files = readdirSync(fixtures)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .filter((f) => !helpers.has(f))
      .sort();
    expect(cases.map(([fixture]) => fixture).sort()).toEqual(files);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it('keeps relative paths relative in messages (default file reader)', () => {
    const rel = path.relative(process.cwd(), path.join(fixtures, 'include-missing.json'));
    expect(() => loadQapiSource(rel)).toThrow(
      `${rel}:2:1: can't read include file '${path.join(path.dirname(rel), 'include-missing-nowhere.json')}': No such file or directory`,
    );
  });

  it('reports an unreadable main file without a line', () => {
    try {
      loadQapiSource('no/such/schema.json');
      expect.unreachable();
    } catch (err) {
      expect(isSchemaError(err)).toBe(true);
      expect((err as SchemaError).message).toBe(
        "no/such/schema.json: can't read schema file: No such file or directory",
      );
      expect((err as SchemaError).line).toBeUndefined();
    }
  });
});

describe('rules of the QEMU version checked', () => {
  it("accepts conditional command arguments without 'boxed' as QEMU 7.2 did, not as 8.1 and later", () => {
    const fixture = 'conditional-arguments-not-boxed.json';
    const schema = loadQapiSource(fixture, { readFile, qemuVersion: '7.2' });
    expect([...schema.commands.keys()]).toHaveLength(1);
    for (const qemuVersion of ['8.1', '10.0'])
      expect(() => loadQapiSource(fixture, { readFile, qemuVersion })).toThrow(
        "conditional-arguments-not-boxed.json:2:11: conditional command arguments require 'boxed': true",
      );
  });

  it('rejects a version it cannot read', () => {
    expect(() => loadQapiSource('x.json', { readFile, qemuVersion: 'ten' })).toThrow(
      "qemuVersion option: not a QEMU version: 'ten' (expected major.minor, e.g. 7.2)",
    );
  });
});
