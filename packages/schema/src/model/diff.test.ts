/** diffSchemas over two small hand-made QAPI schemas: one change of each kind the CLI reports. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type NameMap, readIntrospection } from '../introspection/read.js';
import { loadQapiSource } from '../source/index.js';
import { diffSchemas, formatChange, type SchemaChange } from './diff.js';

const dir = mkdtempSync(path.join(tmpdir(), 'codegen-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function schema(name: string, text: string) {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, text);
  return loadQapiSource(file);
}

const before = schema(
  'before',
  `
{ 'enum': 'Kind', 'data': [ 'a', 'b', 'c' ] }
{ 'struct': 'Aa', 'data': { 'x': 'int' } }
{ 'struct': 'Bb', 'data': { 'y': 'str' } }
{ 'struct': 'Cc', 'data': { 'z': 'bool' } }
{ 'union': 'Opts', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind',
  'data': { 'a': 'Aa', 'b': 'Bb', 'c': 'Cc' } }
{ 'struct': 'Info', 'data': { 'name': 'str', 'size': 'int', 'old': 'str' } }
{ 'command': 'do-it', 'data': { 'id': 'str', 'mode': 'str', 'speed': 'int' },
  'returns': 'Info' }
{ 'command': 'gone' }
`,
);

const after = schema(
  'after',
  `
{ 'enum': 'Kind', 'data': [ 'a', 'b', 'c', 'd' ] }
{ 'struct': 'Aa', 'data': { 'x': 'int' } }
{ 'struct': 'Bb', 'data': { 'y': 'str' } }
{ 'struct': 'Bb2', 'data': { 'y': 'str', '*w': 'int' } }
{ 'struct': 'Dd', 'data': { 'd': 'int' } }
{ 'union': 'Opts', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind',
  'data': { 'a': 'Aa', 'b': 'Bb2', 'd': 'Dd' } }
{ 'struct': 'Info', 'data': { 'name': 'str', '*size': 'int', 'extra': 'bool' } }
{ 'command': 'do-it',
  'data': { 'id': 'str', '*mode': 'str',
            'speed': { 'type': 'int', 'features': [ 'deprecated' ] } },
  'returns': 'Info' }
{ 'command': 'new-one' }
`,
);

describe('diffSchemas', () => {
  const changes = diffSchemas(before, after);
  const lines = changes.map(formatChange);

  it('reports arguments made optional and deprecated', () => {
    expect(changes).toContainEqual({
      kind: 'made-optional',
      target: 'argument',
      path: 'do-it.mode',
    });
    expect(changes).toContainEqual({ kind: 'deprecated', target: 'argument', path: 'do-it.speed' });
    // Unchanged arguments are not mentioned.
    expect(changes.filter((c) => c.path === 'do-it.id')).toEqual([]);
  });

  it('reports return members added, removed and made optional', () => {
    const returns = changes.filter((c) => c.target === 'return-member');
    expect(returns).toEqual(
      expect.arrayContaining([
        { kind: 'made-optional', target: 'return-member', path: 'do-it→.size' },
        { kind: 'removed', target: 'return-member', path: 'do-it→.old', from: 'str' },
        { kind: 'added', target: 'return-member', path: 'do-it→.extra', to: 'bool' },
      ]),
    );
    expect(returns).toHaveLength(3);
  });

  it('reports union branches added, removed and retyped, and the new enum value', () => {
    const branches = changes.filter((c) => c.target === 'branch');
    expect(branches).toEqual(
      expect.arrayContaining([
        { kind: 'type-changed', target: 'branch', path: 'Opts[b]', from: 'Bb', to: 'Bb2' },
        { kind: 'removed', target: 'branch', path: 'Opts[c]', from: 'Cc' },
        { kind: 'added', target: 'branch', path: 'Opts[d]', to: 'Dd' },
      ]),
    );
    expect(branches).toHaveLength(3);
    expect(changes).toContainEqual({ kind: 'added', target: 'enum-value', path: 'Kind.d' });
  });

  it('reports commands added and removed', () => {
    expect(changes).toContainEqual({ kind: 'removed', target: 'command', path: 'gone' });
    expect(changes).toContainEqual({ kind: 'added', target: 'command', path: 'new-one' });
  });

  it('formats each change as one line', () => {
    expect(lines.length).toBe(changes.length);
    expect(lines.every((l) => !l.includes('\n'))).toBe(true);
    expect(lines.some((l) => l.includes('do-it.mode'))).toBe(true);
  });

  it('finds nothing between a schema and itself, and reverses cleanly', () => {
    expect(diffSchemas(after, after)).toEqual([]);
    const back = diffSchemas(after, before);
    expect(back).toContainEqual({ kind: 'made-required', target: 'argument', path: 'do-it.mode' });
    expect(back).toContainEqual({
      kind: 'undeprecated',
      target: 'argument',
      path: 'do-it.speed',
    });
  });
});

describe('diffSchemas of raw query-qmp-schema captures (masked type names)', () => {
  const repo = new URL('../../../../schemas/', import.meta.url);
  const capture = (version: string, withNames: boolean) =>
    readIntrospection({
      file: `qemu-${version}/query-qmp-schema.json`,
      text: readFileSync(new URL(`qemu-${version}/query-qmp-schema.json`, repo), 'utf8'),
      ...(withNames
        ? {
            names: JSON.parse(
              readFileSync(new URL(`qemu-${version}/names.json`, repo), 'utf8'),
            ) as NameMap,
          }
        : {}),
    });
  const count = (changes: readonly SchemaChange[], target: string) =>
    changes.filter((c) => c.target === target).length;

  it('reports the union branches and kind changes of masked argument/return types (6.2 → 7.2)', () => {
    const raw = diffSchemas(capture('6.2', false), capture('7.2', false));
    const named = diffSchemas(capture('6.2', true), capture('7.2', true));
    // Regression: the raw files lost every branch of a masked union used as a command's
    // arguments or result (`blockdev-add`, `query-display-options`): 1 branch instead of 13.
    for (const target of ['branch', 'type', 'enum-value', 'argument', 'command', 'event'])
      expect(count(raw, target), target).toBe(count(named, target));
    expect(raw.map(formatChange)).toEqual(
      expect.arrayContaining([
        '+ branch BlockdevAddArguments[snapshot-access] (BlockdevAddArgumentsBochs)',
        '+ branch QueryDisplayOptionsResult[gtk] (QueryDisplayOptionsResultGtk)',
        '~ type SetPasswordArguments (struct → union)',
      ]),
    );
  });

  it('pairs a masked type that a new command names first with its old name', () => {
    const info = (commands: object[], objectMembers: object[]) =>
      JSON.stringify([
        ...commands,
        { name: '0', 'meta-type': 'object', members: [{ name: 'opt', type: '1' }] },
        { name: '1', 'meta-type': 'object', members: objectMembers },
        { name: 'int', 'meta-type': 'builtin', 'json-type': 'int' },
      ]);
    const zCmd = { name: 'z-cmd', 'meta-type': 'command', 'arg-type': '0', 'ret-type': '0' };
    const aCmd = { name: 'a-cmd', 'meta-type': 'command', 'arg-type': '1', 'ret-type': '0' };
    const before = readIntrospection({
      file: 'before.json',
      text: info([zCmd], [{ name: 'x', type: 'int' }]),
    });
    const after = readIntrospection({
      file: 'after.json',
      text: info(
        [aCmd, zCmd],
        [
          { name: 'x', type: 'int' },
          { name: 'y', type: 'int' },
        ],
      ),
    });
    // The same type is `ZCmdArgumentsOpt` before and `ACmdArguments` after.
    expect(before.types.has('ZCmdArgumentsOpt')).toBe(true);
    expect(after.types.has('ZCmdArgumentsOpt')).toBe(false);
    expect(diffSchemas(before, after).map(formatChange)).toEqual([
      '+ command a-cmd',
      '+ member ZCmdArgumentsOpt.y (int)',
    ]);
  });
});
