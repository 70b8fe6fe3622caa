import { describe, expect, it } from 'vitest';
import { isSchemaError, SchemaError } from '../errors.js';
import { readIntrospection } from './read.js';

// A small SchemaInfo list in the shape QEMU produces (masked names are numbers).
const small = [
  { name: 'query-status', 'meta-type': 'command', 'arg-type': '0', 'ret-type': '1' },
  {
    name: 'blockdev-add',
    'meta-type': 'command',
    'arg-type': '2',
    'ret-type': '0',
    'allow-oob': true,
  },
  { name: 'STOP', 'meta-type': 'event', 'arg-type': '0' },
  { name: 'JOB_CHANGE', 'meta-type': 'event', 'arg-type': '5', features: ['unstable'] },
  { name: '0', 'meta-type': 'object', members: [] },
  {
    name: '1',
    'meta-type': 'object',
    members: [
      { name: 'running', type: 'bool' },
      { name: 'status', type: '3' },
    ],
  },
  {
    name: '2',
    'meta-type': 'object',
    members: [
      { name: 'driver', type: '4' },
      { name: 'node-name', type: 'str', default: null },
    ],
    tag: 'driver',
    variants: [
      { case: 'file', type: '6' },
      { case: 'raw', type: '0' },
    ],
  },
  {
    name: '3',
    'meta-type': 'enum',
    values: ['running', 'paused'],
    members: [{ name: 'running' }, { name: 'paused', features: ['deprecated'] }],
  },
  { name: '4', 'meta-type': 'enum', values: ['file', 'raw'] },
  {
    name: '5',
    'meta-type': 'object',
    members: [
      { name: 'ids', type: '[str]' },
      { name: 'ref', type: '7' },
    ],
  },
  { name: '6', 'meta-type': 'object', members: [{ name: 'filename', type: 'str' }] },
  { name: '7', 'meta-type': 'alternate', members: [{ type: 'str' }, { type: '2' }] },
  { name: 'str', 'meta-type': 'builtin', 'json-type': 'string' },
  { name: 'bool', 'meta-type': 'builtin', 'json-type': 'boolean' },
  { name: '[str]', 'meta-type': 'array', 'element-type': 'str' },
];

const read = (value: unknown, names?: { types: Record<string, string> }) =>
  readIntrospection({ file: 'in.json', text: JSON.stringify(value), ...(names ? { names } : {}) });

describe('readIntrospection', () => {
  it('names masked types by owner and role and lowers unions and alternates', () => {
    const schema = read(small);
    expect([...schema.types.keys()].sort()).toEqual([
      'BlockdevAddArguments',
      'BlockdevAddArgumentsBase',
      'BlockdevAddArgumentsDriver',
      'BlockdevAddArgumentsFile',
      'JobChangeEvent',
      'JobChangeEventRef',
      'QueryStatusResult',
      'QueryStatusResultStatus',
    ]);
    expect(schema.commands.get('query-status')).toMatchObject({
      returns: { kind: 'named', name: 'QueryStatusResult' },
    });
    expect(schema.commands.get('query-status')?.args).toBeUndefined();
    expect(schema.commands.get('blockdev-add')).toMatchObject({
      args: 'BlockdevAddArguments',
      allowOob: true,
    });
    expect(schema.commands.get('blockdev-add')?.returns).toBeUndefined();
    const union = schema.types.get('BlockdevAddArguments');
    // `raw` has no branch: QEMU lists it with the empty type, the IR omits it.
    expect(union).toMatchObject({
      kind: 'union',
      discriminator: 'driver',
      branches: [{ case: 'file', type: 'BlockdevAddArgumentsFile' }],
    });
    expect(schema.types.get('JobChangeEventRef')).toMatchObject({ kind: 'alternate' });
    expect(schema.events.get('JOB_CHANGE')?.features).toEqual([{ name: 'unstable' }]);
    const status = schema.types.get('QueryStatusResultStatus');
    expect(status?.kind === 'enum' && status.values[1]?.features).toEqual([{ name: 'deprecated' }]);
    expect(schema.types.get('BlockdevAddArgumentsBase')).toMatchObject({
      implicit: { owner: 'BlockdevAddArguments', role: 'base' },
      members: [{ name: 'driver' }, { name: 'node-name', optional: true }],
    });
  });

  it('uses recovered names and marks owner+role names as implicit', () => {
    const schema = read(small, {
      types: { '1': 'StatusInfo', '3': 'RunState', '2': 'BlockdevAddArguments' },
    });
    expect(schema.types.get('StatusInfo')).toMatchObject({ kind: 'struct' });
    expect(schema.types.get('StatusInfo')).not.toHaveProperty('implicit');
    expect(schema.types.get('BlockdevAddArguments')).toMatchObject({
      implicit: { owner: 'blockdev-add', role: 'arguments' },
    });
  });

  it('applies integer widths the source knows (introspection only says int)', () => {
    const withInt = small.map((e) =>
      e.name === '6'
        ? {
            ...e,
            members: [
              { name: 'filename', type: 'str' },
              { name: 'size', type: 'int' },
              { name: 'lbas', type: '[int]' },
            ],
          }
        : e,
    );
    withInt.push(
      { name: '[int]', 'meta-type': 'array', 'element-type': 'int' },
      { name: 'int', 'meta-type': 'builtin', 'json-type': 'int' },
    );
    const schema = readIntrospection({
      file: 'in.json',
      text: JSON.stringify(withInt),
      names: {
        types: { '6': 'FileOptions' },
        integers: { FileOptions: { size: 'size', lbas: '[uint64]' } },
      },
    });
    const def = schema.types.get('FileOptions');
    expect(def?.kind === 'struct' && def.members.map((m) => m.type)).toEqual([
      { kind: 'named', name: 'str' },
      { kind: 'named', name: 'size' },
      { kind: 'array', element: { kind: 'named', name: 'uint64' } },
    ]);
  });

  it('does not depend on entry order', () => {
    const forward = read(small);
    const backward = read([...small].reverse());
    expect([...backward.types.keys()].sort()).toEqual([...forward.types.keys()].sort());
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"oops": ', /^in\.json:1:\d+: invalid JSON/],
    ['an object', '{"a": 1}', /not a SchemaInfo list: expected a JSON array/],
    ['an empty list', '[]', /the array is empty/],
    ['a list of numbers', '[1, 2]', /entry #0: expected an object, got 1/],
    ['entry without meta-type', '[{"name": "x"}]', /entry #0 'x': 'meta-type' must be a string/],
    ['unknown meta-type', '[{"name": "x", "meta-type": "struct"}]', /unknown meta-type 'struct'/],
    [
      'command without arg-type',
      '[{"name": "c", "meta-type": "command", "ret-type": "0"}]',
      /'arg-type' must be a string/,
    ],
    [
      'object with bad members',
      '[{"name": "1", "meta-type": "object", "members": [{"name": 3}]}]',
      /object member needs string name and type/,
    ],
    [
      'dangling reference',
      '[{"name": "c", "meta-type": "command", "arg-type": "9", "ret-type": "9"}]',
      /type '9' is referenced but not defined/,
    ],
    [
      'duplicate entry',
      '[{"name": "e", "meta-type": "event", "arg-type": "0"}, {"name": "e", "meta-type": "event", "arg-type": "0"}, {"name": "0", "meta-type": "object", "members": []}]',
      /duplicate entry/,
    ],
  ];
  it.each(bad)('rejects %s with a located SchemaError', (_what, text, message) => {
    let caught: unknown;
    try {
      readIntrospection({ file: 'in.json', text });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SchemaError);
    expect(isSchemaError(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/^in\.json/);
    expect((caught as Error).message).toMatch(message);
  });

  it('accepts a whole QMP reply', () => {
    expect(
      readIntrospection({
        file: 'r.json',
        text: JSON.stringify({ return: small, id: 'libvirt-1' }),
      }).commands.size,
    ).toBe(2);
  });
});
