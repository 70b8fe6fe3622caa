/**
 * The vmstate reader and comparator on hand-made dumps: one pair per problem kind, bad input
 * with the JSON path named, identical dumps give nothing.
 */
import { describe, expect, it } from 'vitest';
import { diffVmstate } from './compare.js';
import { isVmstateArchitectureError, isVmstateDumpError, type VmstateDumpError } from './errors.js';
import { parseVmstateDump, readVmstateDump } from './model.js';

type F = { field: string; version_id?: number; size?: number; Description?: D };
type D = {
  name: string;
  version_id?: number;
  minimum_version_id?: number;
  Fields?: F[];
  Subsections?: D[];
};

function field(f: F) {
  return {
    field: f.field,
    version_id: f.version_id ?? 0,
    field_exists: false,
    size: f.size ?? 4,
    ...(f.Description ? { Description: desc(f.Description) } : {}),
  };
}
function desc(d: D): object {
  return {
    name: d.name,
    version_id: d.version_id ?? 1,
    minimum_version_id: d.minimum_version_id ?? 1,
    ...(d.Fields ? { Fields: d.Fields.map(field) } : {}),
    ...(d.Subsections ? { Subsections: d.Subsections.map(desc) } : {}),
  };
}
function dump(sections: Record<string, D | null>, machine = 'pc-i440fx-7.2') {
  const out: Record<string, unknown> = { vmschkmachine: { Name: machine } };
  for (const [key, d] of Object.entries(sections)) {
    out[key] = {
      Name: key,
      version_id: d?.version_id ?? 1,
      minimum_version_id: d?.minimum_version_id ?? 1,
      ...(d ? { Description: desc(d) } : {}),
    };
  }
  return readVmstateDump(out, key(machine));
}
function key(s: string) {
  return `test ${s}`;
}
function kinds(src: ReturnType<typeof dump>, dst: ReturnType<typeof dump>) {
  return diffVmstate(src, dst).problems.map((p) => [p.kind, p.section, p.description, p.field]);
}

const dev = (fields: F[], extra: Partial<D> = {}): D => ({ name: 'dev', Fields: fields, ...extra });
const abc: F[] = [{ field: 'a' }, { field: 'b' }, { field: 'c' }];

describe('diffVmstate: one hand-made pair per problem kind', () => {
  it('identical dumps (also a real-shaped nested one) give no problems', () => {
    const d = dump({
      dev: dev([...abc, { field: 'parent_obj', Description: { name: 'PCIDevice', Fields: abc } }], {
        Subsections: [{ name: 'dev/sub', Fields: abc }],
      }),
    });
    expect(diffVmstate(d, d).problems).toEqual([]);
  });

  it('machine-type: the dumps are of different machine types', () => {
    expect(kinds(dump({}, 'pc-i440fx-7.2'), dump({}, 'pc-i440fx-10.0'))).toEqual([
      ['machine-type', 'vmschkmachine', undefined, undefined],
    ]);
  });

  it('section-missing, but not for a known section rename (ICH9 LPC → ICH9-LPC)', () => {
    expect(
      kinds(dump({ gone: dev(abc), 'ICH9 LPC': dev(abc) }), dump({ 'ICH9-LPC': dev(abc) })),
    ).toEqual([['section-missing', 'gone', undefined, undefined]]);
  });

  it('version-too-new and version-too-old on a section, a description and a field', () => {
    const src = dump({ s: { ...dev([{ field: 'a', version_id: 3 }]), version_id: 2 } });
    const newer = dump({ s: { ...dev([{ field: 'a', version_id: 2 }]), version_id: 1 } });
    expect(kinds(src, newer)).toEqual([
      ['version-too-new', 's', undefined, undefined],
      ['version-too-new', 's', 'dev', undefined],
      ['version-too-new', 's', 'dev', 'a'],
    ]);
    const old = dump({
      s: { ...dev([{ field: 'a', version_id: 3 }]), version_id: 5, minimum_version_id: 4 },
    });
    expect(kinds(src, old)).toEqual([
      ['version-too-old', 's', undefined, undefined],
      ['version-too-old', 's', 'dev', undefined],
    ]);
  });

  it('description-missing: a section or a struct field without a description on the destination', () => {
    expect(kinds(dump({ s: dev(abc) }), dump({ s: null }))).toEqual([
      ['description-missing', 's', undefined, undefined],
    ]);
    const src = dump({ s: dev([{ field: 'p', Description: { name: 'P', Fields: abc } }]) });
    expect(kinds(src, dump({ s: dev([{ field: 'p' }]) }))).toEqual([
      ['description-missing', 's', 'dev', 'p'],
    ]);
  });

  it('description-renamed unless it is a known rename', () => {
    expect(kinds(dump({ s: dev(abc) }), dump({ s: { ...dev(abc), name: 'other' } }))).toEqual([
      ['description-renamed', 's', 'dev', undefined],
    ]);
  });

  it('field-missing: the destination ends early, or lacks the field altogether', () => {
    expect(kinds(dump({ s: dev(abc) }), dump({ s: dev(abc.slice(0, 2)) }))).toEqual([
      ['field-missing', 's', 'dev', 'c'],
    ]);
    expect(
      kinds(dump({ s: dev(abc) }), dump({ s: dev([{ field: 'a' }, { field: 'c' }]) })),
    ).toEqual([['field-missing', 's', 'dev', 'b']]);
  });

  it('field-added: the destination expects a field the source does not send there', () => {
    expect(
      kinds(
        dump({ s: dev(abc) }),
        dump({ s: dev([{ field: 'a' }, { field: 'x' }, { field: 'b' }, { field: 'c' }]) }),
      ),
    ).toEqual([['field-added', 's', 'dev', 'x']]);
  });

  it('field-renamed, but not a known rename (e1000: dev → parent_obj)', () => {
    expect(
      kinds(
        dump({ s: dev(abc) }),
        dump({ s: dev([{ field: 'a' }, { field: 'B' }, { field: 'c' }]) }),
      ),
    ).toEqual([['field-renamed', 's', 'dev', 'b']]);
    const old = dump({ e1000: { name: 'e1000', Fields: [{ field: 'dev' }, { field: 'x' }] } });
    const now = dump({
      e1000: { name: 'e1000', Fields: [{ field: 'parent_obj' }, { field: 'x' }] },
    });
    expect(kinds(old, now)).toEqual([]);
    expect(kinds(now, old)).toEqual([]);
  });

  it('field-reordered', () => {
    expect(
      kinds(
        dump({ s: dev(abc) }),
        dump({ s: dev([{ field: 'b' }, { field: 'a' }, { field: 'c' }]) }),
      ),
    ).toEqual([['field-reordered', 's', 'dev', 'a']]);
  });

  it('field-size, but a struct field is compared by its contents, not its size', () => {
    expect(
      kinds(
        dump({ s: dev(abc) }),
        dump({ s: dev([{ field: 'a' }, { field: 'b', size: 8 }, { field: 'c' }]) }),
      ),
    ).toEqual([['field-size', 's', 'dev', 'b']]);
    const struct = (size: number, inner: number) =>
      dump({
        s: dev([
          { field: 'p', size, Description: { name: 'P', Fields: [{ field: 'x', size: inner }] } },
        ]),
      });
    expect(kinds(struct(100, 4), struct(200, 4))).toEqual([]);
    expect(kinds(struct(100, 4), struct(100, 2))).toEqual([['field-size', 's', 'P', 'x']]);
  });

  it('unused padding stands for fields of the same total size; unused-size when it does not add up', () => {
    const padded = (n: number) =>
      dump({ s: dev([{ field: 'a' }, { field: 'unused', size: n }, { field: 'd' }]) });
    const real = dump({
      s: dev([{ field: 'a' }, { field: 'b', size: 2 }, { field: 'c', size: 6 }, { field: 'd' }]),
    });
    expect(kinds(real, padded(8))).toEqual([]);
    expect(kinds(padded(8), real)).toEqual([]);
    expect(kinds(real, padded(7))).toEqual([['unused-size', 's', 'dev', 'c']]);
  });

  it('fields moved into a struct keep the wire: no problem either way', () => {
    const flat = dump({
      s: { name: 's', Fields: [{ field: 'a' }, { field: 'b' }, { field: 'c' }] },
    });
    const nested = dump({
      s: {
        name: 's',
        Fields: [
          { field: 'inner', Description: { name: 'I', Fields: [{ field: 'a' }, { field: 'b' }] } },
          { field: 'c' },
        ],
      },
    });
    expect(kinds(flat, nested)).toEqual([]);
    expect(kinds(nested, flat)).toEqual([]);
  });

  it('subsection-missing, and a subsection present on both is compared', () => {
    const src = dump({
      s: dev(abc, {
        Subsections: [
          { name: 'dev/a', Fields: abc },
          { name: 'dev/b', Fields: abc },
        ],
      }),
    });
    const dst = dump({
      s: dev(abc, {
        Subsections: [
          { name: 'dev/b', Fields: [{ field: 'a', size: 1 }, { field: 'b' }, { field: 'c' }] },
        ],
      }),
    });
    expect(kinds(src, dst)).toEqual([
      ['subsection-missing', 's', 'dev', undefined],
      ['field-size', 's', 'dev/b', 'a'],
    ]);
    expect(diffVmstate(src, dst).problems[0]?.message).toContain('"dev/a"');
  });

  it('reverse compares the other way', () => {
    const big = dump({ a: dev(abc), b: dev(abc) });
    const small = dump({ a: dev(abc) });
    expect(diffVmstate(big, small).problems.map((p) => p.section)).toEqual(['b']);
    expect(diffVmstate(big, small, { reverse: true }).problems).toEqual([]);
    expect(diffVmstate(small, big, { reverse: true }).problems.map((p) => p.section)).toEqual([
      'b',
    ]);
  });

  it('dumps of two architectures are refused, not compared', () => {
    let error: unknown;
    try {
      diffVmstate(dump({}, 'pc-q35-7.2'), dump({}, 'virt-7.2'));
    } catch (e) {
      error = e;
    }
    expect(isVmstateArchitectureError(error)).toBe(true);
    expect(error).toMatchObject({ source: 'x86', destination: 'arm' });
    // An x86 dump is recognised by its sections when the machine type does not tell.
    expect(dump({ port92: dev(abc) }, 'none').architecture).toBe('x86');
    expect(dump({}, 'none').architecture).toBeUndefined();
  });
});

describe('parseVmstateDump: bad input', () => {
  function error(text: string): VmstateDumpError {
    try {
      parseVmstateDump(text, 'x.json');
    } catch (e) {
      if (isVmstateDumpError(e)) return e;
      throw e;
    }
    throw new Error('expected a VmstateDumpError');
  }

  it('an empty file (what QEMU leaves when it fails) is "empty"', () => {
    expect(error('').problem).toBe('empty');
  });

  it('text that is not JSON is "not-json", with the parser as cause', () => {
    const e = error('QEMU emulator version 7.2.22\n');
    expect(e.problem).toBe('not-json');
    expect(e.cause).toBeInstanceOf(SyntaxError);
  });

  it('JSON that is not a dump names the path that is wrong', () => {
    expect(error('[]')).toMatchObject({ problem: 'shape', path: '$' });
    expect(error('{"e1000":{}}')).toMatchObject({ problem: 'shape', path: '$' });
    expect(error('{"vmschkmachine":{"Name":1}}')).toMatchObject({ path: '$.vmschkmachine.Name' });
    const text = JSON.stringify({
      vmschkmachine: { Name: 'pc' },
      'ICH9 LPC': {
        Name: 'ICH9 LPC',
        version_id: 1,
        minimum_version_id: 1,
        Description: {
          name: 'x',
          version_id: 1,
          Fields: [{ field: 'a', version_id: 0, field_exists: false, size: '4' }],
        },
      },
    });
    const e = error(text);
    expect(e.path).toBe('$["ICH9 LPC"].Description.Fields[0].size');
    expect(e.message).toContain('expected an integer, found string "4"');
  });

  it('a real-shaped dump is read into the model', () => {
    const d = parseVmstateDump(
      JSON.stringify({
        vmschkmachine: { Name: 'pc-i440fx-7.2' },
        e1000: {
          Name: 'e1000',
          version_id: 2,
          minimum_version_id: 1,
          Description: {
            name: 'e1000',
            version_id: 2,
            minimum_version_id: 1,
            Fields: [{ field: 'mac', version_id: 0, field_exists: true, size: 6 }],
          },
        },
      }),
    );
    expect(d.machine).toBe('pc-i440fx-7.2');
    expect(d.architecture).toBe('x86');
    expect(d.sections.get('e1000')).toEqual({
      key: 'e1000',
      name: 'e1000',
      versionId: 2,
      minimumVersionId: 1,
      description: {
        name: 'e1000',
        versionId: 2,
        minimumVersionId: 1,
        fields: [{ name: 'mac', versionId: 0, fieldExists: true, size: 6 }],
      },
    });
  });
});
