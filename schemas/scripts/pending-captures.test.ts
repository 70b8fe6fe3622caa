/**
 * Captures committed under schemas/pending/ (made by `pnpm schemas:capture --out
 * schemas/pending`) are not turned into bindings yet, but must read cleanly with codegen's
 * introspection reader and match their manifest, so wiring them later is a move, not a fix.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readIntrospection } from '@qmpkit/codegen';
import { describe, expect, it } from 'vitest';

const pending = path.resolve(import.meta.dirname, '../pending');
const dirs = readdirSync(pending).filter((d) => /^qemu-\d+\.\d+$/.test(d));

interface Manifest {
  qemu: { major: number; minor: number; version: string; package: string };
  target: string;
  source: { kind: string; fetchedWith?: string };
  files: Record<string, { sha256: string; entries: number }>;
}

it('holds the 10.0 capture', () => {
  expect(dirs).toContain('qemu-10.0');
});

describe.each(dirs)('schemas/pending/%s', (dir) => {
  const manifest = JSON.parse(
    readFileSync(path.join(pending, dir, 'manifest.json'), 'utf8'),
  ) as Manifest;
  const text = readFileSync(path.join(pending, dir, 'query-qmp-schema.json'), 'utf8');

  it('matches its manifest (version from the directory name, sha256, entry count)', () => {
    expect(`qemu-${manifest.qemu.major}.${manifest.qemu.minor}`).toBe(dir);
    expect(manifest.qemu.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(manifest.source.kind).toBe('capture');
    expect(manifest.target).toBe('x86_64');
    const file = manifest.files['query-qmp-schema.json'];
    expect(file?.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect((JSON.parse(text) as unknown[]).length).toBe(file?.entries);
  });

  it("reads with codegen's introspection reader", () => {
    const schema = readIntrospection({
      file: `schemas/pending/${dir}/query-qmp-schema.json`,
      text,
      qemuVersion: manifest.qemu.version,
    });
    expect(schema.origin.kind).toBe('introspection');
    expect(schema.commands.has('query-status')).toBe(true);
    expect(schema.events.has('SHUTDOWN')).toBe(true);
  });
});

it('the 10.0 capture is a 10.0 binary: what 10.0 has and 7.2 lacks is there', () => {
  const text = readFileSync(path.join(pending, 'qemu-10.0', 'query-qmp-schema.json'), 'utf8');
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
