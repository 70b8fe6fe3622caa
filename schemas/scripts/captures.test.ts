/**
 * Captures of real binaries: those with bindings (`schemas/qemu-*` whose manifest says
 * `capture`) and those committed under schemas/pending/ (made by `pnpm schemas:capture --out
 * schemas/pending`, no bindings yet) must read cleanly with codegen's introspection reader and
 * match their manifest, so wiring a pending one is a move, not a fix.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readIntrospection } from '@qmpkit/codegen';
import { describe, expect, it } from 'vitest';

const schemas = path.resolve(import.meta.dirname, '..');
const versionDirs = (dir: string) =>
  existsSync(dir) ? readdirSync(dir).filter((d) => /^qemu-\d+\.\d+$/.test(d)) : [];
const kindOf = (dir: string) =>
  (JSON.parse(readFileSync(path.join(schemas, dir, 'manifest.json'), 'utf8')) as Manifest).source
    .kind;
/** `qemu-10.0`, `pending/qemu-…`: relative to schemas/. */
const dirs = [
  ...versionDirs(schemas).filter((d) => kindOf(d) === 'capture'),
  ...versionDirs(path.join(schemas, 'pending')).map((d) => `pending/${d}`),
];

interface Manifest {
  qemu: { major: number; minor: number; version: string; package: string };
  target: string;
  source: { kind: string; fetchedWith?: string };
  qapiSource?: { release: string; package: string; version: string };
  files: Record<string, { sha256: string; entries: number }>;
}

it('holds the 7.2 and 10.0 captures, both with bindings', () => {
  expect(dirs).toEqual(expect.arrayContaining(['qemu-7.2', 'qemu-10.0']));
});

describe.each(dirs)('schemas/%s', (dir) => {
  const manifest = JSON.parse(
    readFileSync(path.join(schemas, dir, 'manifest.json'), 'utf8'),
  ) as Manifest;
  const text = readFileSync(path.join(schemas, dir, 'query-qmp-schema.json'), 'utf8');

  it('matches its manifest (version from the directory name, sha256, entry count)', () => {
    expect(`qemu-${manifest.qemu.major}.${manifest.qemu.minor}`).toBe(path.basename(dir));
    expect(manifest.qemu.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(manifest.source.kind).toBe('capture');
    expect(manifest.target).toBe('x86_64');
    const file = manifest.files['query-qmp-schema.json'];
    expect(file?.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect((JSON.parse(text) as unknown[]).length).toBe(file?.entries);
  });

  it("reads with codegen's introspection reader", () => {
    const schema = readIntrospection({
      file: `schemas/${dir}/query-qmp-schema.json`,
      text,
      qemuVersion: manifest.qemu.version,
    });
    expect(schema.origin.kind).toBe('introspection');
    expect(schema.commands.has('query-status')).toBe(true);
    expect(schema.events.has('SHUTDOWN')).toBe(true);
  });
});

it('names the QAPI source its names (and local docs) come from: 10.0.13 beside the 10.0.2 binary', () => {
  const manifest = JSON.parse(
    readFileSync(path.join(schemas, 'qemu-10.0', 'manifest.json'), 'utf8'),
  ) as Manifest;
  expect(manifest.qemu.version).toBe('10.0.2');
  expect(manifest.qapiSource?.version).toBe('10.0.13');
  expect(manifest.qapiSource?.release).toBe('debian-trixie');
});

it('the 10.0 capture is a 10.0 binary: what 10.0 has and 7.2 lacks is there', () => {
  const text = readFileSync(path.join(schemas, 'qemu-10.0', 'query-qmp-schema.json'), 'utf8');
  const schema = readIntrospection({ file: 'qemu-10.0', text });
  // block-job-change arrived in 8.2; the mapped-ram migration capability in 9.0.
  expect(schema.commands.has('block-job-change')).toBe(true);
  // Introspection masks type names; find the migration capability enum by a 7.2 member.
  const capability = [...schema.types.values()].find(
    (t) => t.kind === 'enum' && t.values.some((v) => v.name === 'postcopy-ram'),
  );
  const values = capability?.kind === 'enum' ? capability.values.map((v) => v.name) : [];
  expect(values).toContain('mapped-ram');
  expect(values).not.toContain('compress'); // removed in 9.1
});
