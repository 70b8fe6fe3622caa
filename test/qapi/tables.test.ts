/**
 * The runtime tables ship packed (`unpackTables(JSON.parse('…'))`, see codegen's
 * emit/tables.ts): packing then unpacking must give back exactly the tables the generator
 * built, for every committed capture and recording, and the generated modules must hold them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildTables, type NameMap, packTables, readIntrospection } from '@qmpkit/codegen';
import { tables as defaultTables } from '@qmpkit/qapi';
import { unpackTables } from '@qmpkit/qapi/runtime-v1';
import { describe, expect, it } from 'vitest';

const schemas = path.resolve(import.meta.dirname, '../../schemas');
const versions = readdirSync(schemas).filter((d) => /^qemu-\d+\.\d+$/.test(d));

function built(dir: string) {
  const read = (file: string) => readFileSync(path.join(schemas, dir, file), 'utf8');
  const manifest = JSON.parse(read('manifest.json')) as { qemu: { version: string } };
  const schema = readIntrospection({
    file: `schemas/${dir}/query-qmp-schema.json`,
    text: read('query-qmp-schema.json'),
    names: JSON.parse(read('names.json')) as NameMap,
    qemuVersion: manifest.qemu.version,
  });
  return buildTables(schema, manifest.qemu.version);
}

describe('packed runtime tables', () => {
  it.each(versions)('%s: unpack(JSON(pack(tables))) is the tables', (dir) => {
    const tables = built(dir);
    const packed = JSON.parse(JSON.stringify(packTables(tables)));
    expect(unpackTables(packed)).toStrictEqual(tables);
  });

  it('the default bindings load the tables of their capture', () => {
    const dir = `qemu-${defaultTables.qemuVersion.split('.').slice(0, 2).join('.')}`;
    expect(defaultTables).toStrictEqual(built(dir));
  });

  it('rejects an unknown packed format or kind', () => {
    // JSON.parse: what generated code passes in, and a shape the type does not allow.
    expect(() => unpackTables(JSON.parse('[2,"x",[],[],[]]'))).toThrow(/unknown format 2/);
    expect(() => unpackTables([1, 'x', [['T', 7, []]], [], []])).toThrow(/unknown kind 7 of T/);
  });
});
