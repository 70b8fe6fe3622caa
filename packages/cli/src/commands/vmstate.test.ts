/**
 * `qmpkit vmstate diff` on dump files: exit 0 for identical dumps, 3 with the count (and
 * `{ problems }` with --json), 2 for a file that is not a dump and for a binary without
 * --machine; --reverse swaps the direction. (vmstate.qemu.test.ts runs real binaries.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-cli-vmstate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

function section(name: string, fields: string[]) {
  return {
    Name: name,
    version_id: 1,
    minimum_version_id: 1,
    Description: {
      name,
      version_id: 1,
      minimum_version_id: 1,
      Fields: fields.map((field) => ({ field, version_id: 0, field_exists: false, size: 4 })),
    },
  };
}

function file(name: string, content: unknown): string {
  const p = path.join(tmp, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const machine = { Name: 'pc-i440fx-7.2' };
const old = file('old.json', { vmschkmachine: machine, a: section('a', ['x', 'y']) });
const grown = file('new.json', {
  vmschkmachine: machine,
  a: section('a', ['x']),
  b: section('b', ['z']),
});

it('two identical dumps: exit 0, compatible', async () => {
  const result = await run('vmstate', 'diff', old, old);
  expect(result).toMatchObject({ code: 0, err: '' });
  expect(result.out).toContain('compatible');
  const json = await run('vmstate', 'diff', old, old, '--json');
  expect(json.code).toBe(0);
  expect(JSON.parse(json.out)).toEqual({ problems: [] });
});

it('problems: exit 3 with the count; --json prints them; --reverse compares the other way', async () => {
  const result = await run('vmstate', 'diff', old, grown);
  expect(result.code).toBe(3);
  expect(result.out).toContain('1 problem:');
  expect(result.out).toContain('field-missing');
  const json = await run('vmstate', 'diff', old, grown, '--json');
  expect(json.code).toBe(3);
  expect(JSON.parse(json.out)).toEqual({
    problems: [
      {
        section: 'a',
        description: 'a',
        field: 'y',
        kind: 'field-missing',
        message: 'field "y" is sent, but the destination expects no further fields',
      },
    ],
  });
  const reverse = await run('vmstate', 'diff', old, grown, '--reverse', '--json');
  expect(reverse.code).toBe(3);
  expect(JSON.parse(reverse.out).problems.map((p: { kind: string }) => p.kind)).toEqual([
    'section-missing',
  ]);
});

it('a file that is not JSON, and JSON that is not a dump, exit 2 naming what is wrong', async () => {
  const text = await run('vmstate', 'diff', file('bad.json', 'hello'), old);
  expect(text.code).toBe(2);
  expect(text.err).toContain('not JSON');
  const shape = await run(
    'vmstate',
    'diff',
    old,
    file('shape.json', { vmschkmachine: machine, a: { Name: 'a' } }),
  );
  expect(shape.code).toBe(2);
  expect(shape.err).toContain('$.a.version_id: expected an integer');
});

it('dumps of two architectures exit 2', async () => {
  const arm = file('arm.json', { vmschkmachine: { Name: 'virt-7.2' }, a: section('a', ['x']) });
  const result = await run('vmstate', 'diff', old, arm);
  expect(result.code).toBe(2);
  expect(result.err).toContain('different architectures (x86 → arm)');
});

it('a binary without --machine is a usage error (exit 2)', async () => {
  const result = await run('vmstate', 'diff', old, 'qemu-system-x86_64');
  expect(result.code).toBe(2);
  expect(result.err).toContain('--machine TYPE is required');
});
