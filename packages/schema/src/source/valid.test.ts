import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Schema } from '../model/ir.js';
import { allMembers } from '../model/schema.js';
import { loadQapiSource, parseQapiFile } from './index.js';

const fixtures = fileURLToPath(new URL('../../../../test/fixtures/qapi/valid/', import.meta.url));
const readFile = (file: string): string => readFileSync(path.join(fixtures, file), 'utf8');
const load = (file: string): Schema => loadQapiSource(file, { readFile });

/** Drops source locations (checked separately) so snapshots stay readable. */
function withoutLoc(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutLoc);
  if (value instanceof Map)
    return Object.fromEntries([...value].map(([k, v]) => [k, withoutLoc(v)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== 'loc')
        .map(([k, v]) => [k, withoutLoc(v)]),
    );
  }
  return value;
}

describe('schema with includes (valid/schema)', () => {
  const schema = load('schema/main.json');

  it('records modules in include order, include-once, origin and pragmas', () => {
    expect(schema.modules).toEqual(['main', 'common', 'sub/devices']);
    const sha = createHash('sha256');
    for (const f of ['schema/main.json', 'schema/common.json', 'schema/sub/devices.json']) {
      sha.update(readFile(f));
    }
    expect(schema.origin).toEqual({
      kind: 'qapi-source',
      file: 'schema/main.json',
      sha256: sha.digest('hex'),
    });
    expect(schema.pragmas).toEqual({
      docRequired: true,
      commandNameExceptions: ['legacy_reset'],
      commandReturnsExceptions: ['get-count', 'list-names'],
      memberNameExceptions: ['Register'],
      documentationExceptions: ['Register'],
    });
  });

  it('keeps definition order and modules per definition', () => {
    expect([...schema.types.keys()]).toEqual([
      'Colour',
      'Point',
      'Point3',
      'Register',
      'Form',
      'Circle',
      'Square',
      'ShapeBase',
      'Shape',
      'ShapeCommon',
      'NamedShape',
      'Size',
      'MoveArguments',
      'OrgExampleFrobArguments',
      'PointMovedEvent',
    ]);
    expect(schema.types.get('Point')?.module).toBe('common');
    expect(schema.types.get('Shape')?.module).toBe('sub/devices');
    expect(schema.types.get('ShapeBase')?.module).toBe('sub/devices');
    expect(schema.commands.get('move')?.module).toBe('main');
    expect([...schema.commands.keys()]).toEqual([
      'move',
      'draw',
      'legacy_reset',
      'get-count',
      'list-names',
      'list-points',
      '__org.example_frob',
    ]);
    expect([...schema.events.keys()]).toEqual(['POINT_MOVED', 'SHAPE_DRAWN', 'RESET']);
  });

  it('records source locations of definitions and members', () => {
    const point3 = schema.types.get('Point3');
    expect(point3?.loc).toEqual({ file: 'schema/common.json', line: 60, col: 1 });
    expect(point3?.kind === 'struct' && point3.members.map((m) => m.loc)).toEqual([
      { file: 'schema/common.json', line: 61, col: 13 },
      { file: 'schema/common.json', line: 62, col: 13 },
      { file: 'schema/common.json', line: 63, col: 13 },
    ]);
  });

  it('lowers enums with dict members, conditions, features and prefix', () => {
    expect(withoutLoc(schema.types.get('Colour'))).toMatchInlineSnapshot(`
      {
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "A colour.",
        },
        "features": [],
        "kind": "enum",
        "module": "common",
        "name": "Colour",
        "prefix": "COL",
        "values": [
          {
            "doc": "red",
            "features": [],
            "name": "red",
          },
          {
            "doc": "green",
            "features": [],
            "name": "green",
          },
          {
            "doc": "not visible",
            "features": [
              {
                "doc": "may go away",
                "name": "unstable",
              },
            ],
            "if": {
              "kind": "config",
              "name": "CONFIG_IR",
            },
            "name": "infra-red",
          },
        ],
      }
    `);
  });

  it('lowers structs with base, optional, conditional and array members', () => {
    expect(withoutLoc(schema.types.get('Point3'))).toMatchInlineSnapshot(`
      {
        "base": "Point",
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "A point in space.",
        },
        "features": [
          {
            "doc": "has extras",
            "if": {
              "kind": "config",
              "name": "CONFIG_FANCY",
            },
            "name": "fancy",
          },
        ],
        "kind": "struct",
        "members": [
          {
            "doc": "depth",
            "features": [],
            "name": "z",
            "optional": false,
            "type": {
              "kind": "named",
              "name": "int",
            },
          },
          {
            "doc": "a name",
            "features": [],
            "if": {
              "kind": "config",
              "name": "CONFIG_LABELS",
            },
            "name": "label",
            "optional": true,
            "type": {
              "kind": "named",
              "name": "str",
            },
          },
          {
            "doc": "free-form tags",
            "features": [],
            "name": "tags",
            "optional": true,
            "type": {
              "element": {
                "kind": "named",
                "name": "str",
              },
              "kind": "array",
            },
          },
        ],
        "module": "common",
        "name": "Point3",
      }
    `);
    expect(allMembers(schema, 'Point3')?.map((m) => m.name)).toEqual([
      'x',
      'y',
      'z',
      'label',
      'tags',
    ]);
  });

  it('lowers a union with an inline base into <Union>Base', () => {
    expect(withoutLoc(schema.types.get('Shape'))).toMatchInlineSnapshot(`
      {
        "base": "ShapeBase",
        "branches": [
          {
            "case": "circle",
            "type": "Circle",
          },
          {
            "case": "square",
            "if": {
              "kind": "config",
              "name": "CONFIG_SQUARES",
            },
            "type": "Square",
          },
        ],
        "discriminator": "kind",
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "A shape.",
        },
        "features": [],
        "kind": "union",
        "module": "sub/devices",
        "name": "Shape",
      }
    `);
    expect(withoutLoc(schema.types.get('ShapeBase'))).toMatchInlineSnapshot(`
      {
        "features": [],
        "implicit": {
          "owner": "Shape",
          "role": "base",
        },
        "kind": "struct",
        "members": [
          {
            "doc": "what it is",
            "features": [],
            "name": "kind",
            "optional": false,
            "type": {
              "kind": "named",
              "name": "Form",
            },
          },
          {
            "doc": "its colour",
            "features": [],
            "name": "colour",
            "optional": true,
            "type": {
              "kind": "named",
              "name": "Colour",
            },
          },
        ],
        "module": "sub/devices",
        "name": "ShapeBase",
      }
    `);
    const named = schema.types.get('NamedShape');
    expect(named?.kind === 'union' && [named.base, named.discriminator]).toEqual([
      'ShapeCommon',
      'form',
    ]);
  });

  it('lowers alternates', () => {
    expect(withoutLoc(schema.types.get('Size'))).toMatchInlineSnapshot(`
      {
        "alternatives": [
          {
            "doc": "in bytes",
            "name": "bytes",
            "type": {
              "kind": "named",
              "name": "size",
            },
          },
          {
            "doc": "symbolic, e.g. "large"",
            "name": "name",
            "type": {
              "kind": "named",
              "name": "Form",
            },
          },
          {
            "doc": "like that shape",
            "name": "shape",
            "type": {
              "kind": "named",
              "name": "Shape",
            },
          },
          {
            "doc": "as a polygon",
            "name": "points",
            "type": {
              "element": {
                "kind": "named",
                "name": "Point",
              },
              "kind": "array",
            },
          },
          {
            "doc": "no size",
            "name": "none",
            "type": {
              "kind": "named",
              "name": "null",
            },
          },
        ],
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "A size given one way or another.",
        },
        "features": [],
        "kind": "alternate",
        "module": "sub/devices",
        "name": "Size",
      }
    `);
  });

  it('lowers commands: inline and boxed data, returns, flags, features, conditions', () => {
    expect(withoutLoc(schema.commands.get('move'))).toMatchInlineSnapshot(`
      {
        "allowOob": false,
        "allowPreconfig": true,
        "args": "MoveArguments",
        "boxed": false,
        "coroutine": false,
        "doc": {
          "sections": [
            {
              "tag": "Returns",
              "text": "the new position",
            },
            {
              "tag": "Errors",
              "text": "- if the cursor is locked",
            },
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "Moves the cursor.",
        },
        "features": [],
        "gen": true,
        "kind": "command",
        "module": "main",
        "name": "move",
        "returns": {
          "kind": "named",
          "name": "Point",
        },
        "successResponse": true,
      }
    `);
    expect(withoutLoc(schema.types.get('MoveArguments'))).toMatchInlineSnapshot(`
      {
        "features": [],
        "implicit": {
          "owner": "move",
          "role": "arguments",
        },
        "kind": "struct",
        "members": [
          {
            "doc": "horizontal target",
            "features": [],
            "name": "x",
            "optional": false,
            "type": {
              "kind": "named",
              "name": "int",
            },
          },
          {
            "doc": "vertical target,
      in pixels",
            "features": [],
            "name": "y",
            "optional": false,
            "type": {
              "kind": "named",
              "name": "int",
            },
          },
          {
            "doc": "how fast",
            "features": [
              {
                "doc": "the speed semantics may change",
                "name": "unstable",
              },
            ],
            "name": "speed",
            "optional": true,
            "type": {
              "kind": "named",
              "name": "uint8",
            },
          },
        ],
        "module": "main",
        "name": "MoveArguments",
      }
    `);
    expect(withoutLoc(schema.commands.get('draw'))).toMatchInlineSnapshot(`
      {
        "allowOob": false,
        "allowPreconfig": false,
        "args": "Shape",
        "boxed": true,
        "coroutine": true,
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "Draws a shape.",
        },
        "features": [],
        "gen": true,
        "kind": "command",
        "module": "main",
        "name": "draw",
        "successResponse": true,
      }
    `);
    const reset = schema.commands.get('legacy_reset');
    expect(reset && [reset.successResponse, reset.allowOob, reset.features]).toEqual([
      false,
      true,
      [{ name: 'deprecated', doc: 'use @reset instead' }],
    ]);
    expect(schema.commands.get('get-count')).toMatchObject({
      gen: false,
      returns: { kind: 'named', name: 'int' },
    });
    expect(schema.commands.get('list-names')).toMatchObject({
      returns: { kind: 'array', element: { kind: 'named', name: 'str' } },
      if: { kind: 'not', of: { kind: 'config', name: 'CONFIG_TINY' } },
    });
    expect(schema.commands.get('list-points')?.returns).toEqual({
      kind: 'array',
      element: { kind: 'named', name: 'Point' },
    });
    expect(schema.commands.get('__org.example_frob')?.args).toBe('OrgExampleFrobArguments');
  });

  it('lowers events: inline data into <Event>Event, boxed named data, no data', () => {
    expect(withoutLoc(schema.events.get('POINT_MOVED'))).toMatchInlineSnapshot(`
      {
        "boxed": false,
        "data": "PointMovedEvent",
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "Emitted when the cursor moved.",
        },
        "features": [],
        "kind": "event",
        "module": "main",
        "name": "POINT_MOVED",
      }
    `);
    expect(schema.types.get('PointMovedEvent')?.implicit).toEqual({
      owner: 'POINT_MOVED',
      role: 'event-data',
    });
    expect(withoutLoc(schema.events.get('SHAPE_DRAWN'))).toMatchInlineSnapshot(`
      {
        "boxed": true,
        "data": "Shape",
        "doc": {
          "sections": [
            {
              "tag": "Since",
              "text": "1.0",
            },
          ],
          "since": "1.0",
          "text": "Emitted after @draw.",
        },
        "features": [],
        "if": {
          "kind": "all",
          "of": [
            {
              "kind": "config",
              "name": "CONFIG_DRAW",
            },
            {
              "kind": "any",
              "of": [
                {
                  "kind": "config",
                  "name": "CONFIG_SVG",
                },
                {
                  "kind": "config",
                  "name": "CONFIG_PNG",
                },
              ],
            },
          ],
        },
        "kind": "event",
        "module": "main",
        "name": "SHAPE_DRAWN",
      }
    `);
    expect(schema.events.get('RESET')).toMatchObject({ boxed: false });
    expect(schema.events.get('RESET')).not.toHaveProperty('data');
  });
});

describe('parseQapiFile', () => {
  const parsed = parseQapiFile('schema/main.json', { readFile });

  it('returns files, include directives and free-form docs', () => {
    expect(parsed.files.map((f) => [f.path, f.module, f.includedFrom])).toEqual([
      ['schema/main.json', 'main', undefined],
      ['schema/common.json', 'common', { file: 'schema/main.json', line: 19, col: 1 }],
      ['schema/sub/devices.json', 'sub/devices', { file: 'schema/main.json', line: 20, col: 1 }],
    ]);
    const includes = parsed.expressions.filter((e) => e.kind === 'include');
    expect(includes.map((e) => [e.include, e.path, e.loaded])).toEqual([
      ['common.json', 'schema/common.json', true],
      ['sub/devices.json', 'schema/sub/devices.json', true],
      ['../common.json', 'schema/common.json', false],
      ['common.json', 'schema/common.json', false],
    ]);
    const freeForm = parsed.docs.filter((d) => d.symbol === undefined);
    expect(freeForm.map((d) => d.sections[0]?.text)).toEqual([
      '= Toy machine\n\nEverything a toy machine offers.',
      '== Common types',
      '== Commands',
    ]);
  });

  it('keeps raw values with locations', () => {
    const first = parsed.expressions.find((e) => e.kind === 'definition');
    expect(
      first?.kind === 'definition' && first.value.entries.map((e) => [e.key, e.keyLoc]),
    ).toEqual([
      ['enum', { file: 'schema/common.json', line: 24, col: 3 }],
      ['prefix', { file: 'schema/common.json', line: 25, col: 3 }],
      ['data', { file: 'schema/common.json', line: 26, col: 3 }],
    ]);
  });
});

describe('legacy simple union', () => {
  const schema = load('legacy-simple-union.json');

  it('is normalized into <Name>Kind, <Name>Base and wrapper structs', () => {
    expect([...schema.types.keys()]).toEqual([
      'ValueKind',
      'ValueBase',
      'ValueTextWrapper',
      'ValueNumbersWrapper',
      'Value',
    ]);
    expect(withoutLoc(schema.types)).toMatchInlineSnapshot(`
      {
        "Value": {
          "base": "ValueBase",
          "branches": [
            {
              "case": "text",
              "type": "ValueTextWrapper",
            },
            {
              "case": "numbers",
              "if": {
                "kind": "config",
                "name": "CONFIG_NUMBERS",
              },
              "type": "ValueNumbersWrapper",
            },
          ],
          "discriminator": "type",
          "doc": {
            "sections": [
              {
                "tag": "Since",
                "text": "0.5",
              },
            ],
            "since": "0.5",
            "text": "A value.",
          },
          "features": [],
          "kind": "union",
          "legacySimple": true,
          "module": "legacy-simple-union",
          "name": "Value",
        },
        "ValueBase": {
          "features": [],
          "implicit": {
            "owner": "Value",
            "role": "base",
          },
          "kind": "struct",
          "members": [
            {
              "features": [],
              "name": "type",
              "optional": false,
              "type": {
                "kind": "named",
                "name": "ValueKind",
              },
            },
          ],
          "module": "legacy-simple-union",
          "name": "ValueBase",
        },
        "ValueKind": {
          "features": [],
          "implicit": {
            "owner": "Value",
            "role": "kind-enum",
          },
          "kind": "enum",
          "module": "legacy-simple-union",
          "name": "ValueKind",
          "values": [
            {
              "doc": "a string",
              "features": [],
              "name": "text",
            },
            {
              "doc": "some numbers",
              "features": [],
              "if": {
                "kind": "config",
                "name": "CONFIG_NUMBERS",
              },
              "name": "numbers",
            },
          ],
        },
        "ValueNumbersWrapper": {
          "features": [],
          "if": {
            "kind": "config",
            "name": "CONFIG_NUMBERS",
          },
          "implicit": {
            "detail": "numbers",
            "owner": "Value",
            "role": "wrapper",
          },
          "kind": "struct",
          "members": [
            {
              "features": [],
              "name": "data",
              "optional": false,
              "type": {
                "element": {
                  "kind": "named",
                  "name": "int",
                },
                "kind": "array",
              },
            },
          ],
          "module": "legacy-simple-union",
          "name": "ValueNumbersWrapper",
        },
        "ValueTextWrapper": {
          "features": [],
          "implicit": {
            "detail": "text",
            "owner": "Value",
            "role": "wrapper",
          },
          "kind": "struct",
          "members": [
            {
              "features": [],
              "name": "data",
              "optional": false,
              "type": {
                "kind": "named",
                "name": "str",
              },
            },
          ],
          "module": "legacy-simple-union",
          "name": "ValueTextWrapper",
        },
      }
    `);
  });
});

describe('doc comments in QEMU 7.2 and upstream style', () => {
  const old = loadQapiSource('docs-7.2-style.json', { readFile, qemuVersion: '7.2' });
  const upstream = load('docs-upstream-style.json');

  it('attaches member docs identically in both styles', () => {
    const values = (s: Schema) => {
      const def = s.types.get('LampState');
      return def?.kind === 'enum' ? def.values.map((v) => v.doc) : [];
    };
    expect(values(old)).toEqual([
      'lit',
      'dark, and this description is long enough that it\ncontinues on a second line aligned with the text',
      values(old)[2],
    ]);
    expect(values(upstream).slice(0, 2)).toEqual(values(old).slice(0, 2));
    expect(values(old)[2]).toBe(
      'the bulb needs replacing; this description starts on the line\nafter the tag',
    );
    expect(values(upstream)[2]).toBe(
      'the bulb needs replacing; this description starts on the\nline of the tag',
    );
    expect(old.types.get('LampState')?.doc).toEqual(upstream.types.get('LampState')?.doc);
    const argsOf = (s: Schema) => {
      const def = s.types.get('SwitchLampArguments');
      return def?.kind === 'struct' ? withoutLoc(def.members) : undefined;
    };
    expect(argsOf(old)).toEqual(argsOf(upstream));
    expect(argsOf(old)).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'id', doc: 'the lamp' })]),
    );
  });

  it('keeps 7.2 Note and Example sections', () => {
    expect(old.commands.get('switch-lamp')?.doc).toMatchInlineSnapshot(`
      {
        "sections": [
          {
            "tag": "Returns",
            "text": "the previous state",
          },
          {
            "tag": "Notes",
            "text": "Switching a broken lamp does nothing.  This note, too,
      continues on an aligned line.

      It has a second paragraph.",
          },
          {
            "tag": "Since",
            "text": "2.0",
          },
          {
            "tag": "Example",
            "text": "-> { "execute": "switch-lamp",
           "arguments": { "id": "hall", "state": "on" } }
      <- { "return": { "state": "off" } }

      -> { "execute": "switch-lamp",
           "arguments": { "id": "hall", "state": "off" } }
      <- { "return": { "state": "on" } }",
          },
        ],
        "since": "2.0",
        "text": "Switches a lamp.",
      }
    `);
  });

  it('keeps upstream Errors sections and rST directives as text', () => {
    expect(upstream.commands.get('switch-lamp')?.doc).toMatchInlineSnapshot(`
      {
        "sections": [
          {
            "tag": "Returns",
            "text": "the previous state",
          },
          {
            "tag": "Errors",
            "text": "- if the lamp does not exist",
          },
          {
            "tag": "Since",
            "text": "2.0",
          },
        ],
        "since": "2.0",
        "text": "Switches a lamp.

      .. note:: Switching a broken lamp does nothing.

      .. qmp-example::

          -> { "execute": "switch-lamp",
               "arguments": { "id": "hall", "state": "on" } }
          <- { "return": { "state": "off" } }",
      }
    `);
    expect(upstream.commands.get('switch-lamp')?.features).toEqual([
      { name: 'deprecated', doc: 'lamps are switched by the hardware now' },
    ]);
  });
});
