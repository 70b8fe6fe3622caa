import { describe, expect, it } from 'vitest';
import { model72 } from '../cli.test-support.js';
import { buildArguments, previewOf } from './build.js';
import { tokenize } from './tokenize.js';

describe('tokenize', () => {
  it('keeps quoted strings and JSON values with spaces as one word', () => {
    const { tokens, open } = tokenize(`cmd a="x y" b='p q' c={"k": [1, 2]} d=[1, 2]  `);
    expect(tokens.map((t) => t.text)).toEqual([
      'cmd',
      'a="x y"',
      "b='p q'",
      'c={"k": [1, 2]}',
      'd=[1, 2]',
    ]);
    expect(open).toBe(false);
  });
  it('reports an open quote or bracket and a trailing space', () => {
    expect(tokenize('cmd a="x').open).toBe(true);
    expect(tokenize('cmd a={"b": 1').open).toBe(true);
    expect(tokenize('cmd a=1 ').trailingSpace).toBe(true);
    expect(tokenize('cmd a=1').trailingSpace).toBe(false);
  });
});

describe('buildArguments with the live schema (QEMU 7.2 capture)', () => {
  it('coerces by member type: str stays a string, ints, bools (on/off too), lists', async () => {
    const model = await model72();
    const args = buildArguments(
      ['driver=null-co', 'node-name=123', 'size=1048576', 'read-zeroes=on', 'latency-ns=0x10'],
      model,
      model.argType('blockdev-add'),
    );
    expect(args).toEqual({
      driver: 'null-co',
      'node-name': '123',
      size: 1048576,
      'read-zeroes': true,
      'latency-ns': 16,
    });
    expect(
      buildArguments(
        ['tag=t', 'job-id=j', 'vmstate=disk0', 'devices=disk0,disk1'],
        model,
        model.argType('snapshot-save'),
      ),
    ).toEqual({ tag: 't', 'job-id': 'j', vmstate: 'disk0', devices: ['disk0', 'disk1'] });
  });

  it('picks the union branch from the tag even when the tag comes last, and nests dotted keys', async () => {
    const model = await model72();
    const args = buildArguments(
      [
        'cache.direct=on',
        'file.filename=/tmp/x.qcow2',
        'file.driver=file',
        'node-name=d0',
        'driver=qcow2',
        'lazy-refcounts=off',
      ],
      model,
      model.argType('blockdev-add'),
    );
    expect(args).toEqual({
      cache: { direct: true },
      file: { filename: '/tmp/x.qcow2', driver: 'file' },
      'node-name': 'd0',
      driver: 'qcow2',
      'lazy-refcounts': false,
    });
  });

  it('quoted values are strings; {…} and […] are JSON; one JSON object is the whole argument set', async () => {
    const model = await model72();
    const argType = model.argType('blockdev-add');
    expect(buildArguments(['driver=null-co', 'size="12"'], model, argType)).toEqual({
      driver: 'null-co',
      size: '12',
    });
    expect(buildArguments(['{"driver":"null-co","size":1}'], model, argType)).toEqual({
      driver: 'null-co',
      size: 1,
    });
    expect(
      buildArguments(['driver=qcow2', 'file={"driver":"file","filename":"/x"}'], model, argType),
    ).toEqual({
      driver: 'qcow2',
      file: { driver: 'file', filename: '/x' },
    });
  });

  it('builds list elements with numeric segments (transaction actions)', async () => {
    const model = await model72();
    const args = buildArguments(
      [
        'actions.0.type=block-dirty-bitmap-add',
        'actions.0.data.node=d0',
        'actions.0.data.name=b0',
        'actions.0.data.granularity=65536',
      ],
      model,
      model.argType('transaction'),
    );
    expect(args).toEqual({
      actions: [
        { type: 'block-dirty-bitmap-add', data: { node: 'd0', name: 'b0', granularity: 65536 } },
      ],
    });
  });

  it('alternates: an enum value wins, then null, bool and numbers, else a string', async () => {
    const model = await model72();
    // BlockdevRef (BlockdevOptions | str): a node name stays a string.
    expect(
      buildArguments(['driver=qcow2', 'file=disk0'], model, model.argType('blockdev-add')),
    ).toEqual({
      driver: 'qcow2',
      file: 'disk0',
    });
    // StrOrNull: the word null is JSON null.
    expect(
      buildArguments(
        ['driver=qcow2', 'file=disk0', 'backing=null'],
        model,
        model.argType('blockdev-add'),
      ),
    ).toMatchObject({ backing: null });
  });

  it('guesses like qmp-shell without a schema, and for keys the schema lacks', async () => {
    expect(buildArguments(['a=1', 'b=true', 'c=x', 'd=null', 'e=[1,"x"]'])).toEqual({
      a: 1,
      b: true,
      c: 'x',
      d: null,
      e: [1, 'x'],
    });
    const model = await model72();
    expect(
      buildArguments(['driver=null-co', 'bogus=12'], model, model.argType('blockdev-add')),
    ).toEqual({
      driver: 'null-co',
      bogus: 12,
    });
  });

  it('rejects words that are not key=value, duplicate keys, and bad JSON, naming the word', () => {
    expect(() => buildArguments(['x1'])).toThrow(/'x1': expected key=value/);
    expect(() => buildArguments(['a=1', 'a=2'])).toThrow(/'a' is given twice/);
    expect(() => buildArguments(['a=1', 'a.b=2'])).toThrow(/not an object/);
    expect(() => buildArguments(['a={"x":'])).toThrow(/invalid JSON/);
    expect(() => buildArguments(['[1]'])).toThrow(/expected key=value/);
    expect(() => buildArguments(['a=1', '{"b":2}'])).toThrow(/only argument/);
  });

  it('previewOf arranges raw texts by path and ignores malformed words', () => {
    expect(previewOf(['driver=qcow2', 'file.filename="/a b"', 'junk', 'x.=1'])).toEqual({
      driver: 'qcow2',
      file: { filename: '/a b' },
    });
  });
});
