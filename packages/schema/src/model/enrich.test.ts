import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readIntrospection } from '../introspection/read.js';
import { loadQapiSource } from '../source/index.js';
import { withSourceDocs } from './enrich.js';

const repoRoot = path.resolve(import.meta.dirname, '../../../..');
const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');

describe('withSourceDocs', () => {
  it('adds the 7.2 source docs to the capture IR without changing its shape', (ctx) => {
    if (!existsSync(sourceMain)) {
      if (process.env.CI === 'true') throw new Error('run `pnpm schemas:source` first');
      ctx.skip('QEMU 7.2 QAPI source not fetched; run `pnpm schemas:source`');
    }
    const dir = path.join(repoRoot, 'schemas/qemu-7.2');
    const capture = readIntrospection({
      file: 'capture',
      text: readFileSync(path.join(dir, 'query-qmp-schema.json'), 'utf8'),
      names: JSON.parse(readFileSync(path.join(dir, 'names.json'), 'utf8')),
    });
    const enriched = withSourceDocs(capture, loadQapiSource(sourceMain, { qemuVersion: '7.2' }));
    expect([...enriched.types.keys()]).toEqual([...capture.types.keys()]);
    expect([...enriched.commands.keys()]).toEqual([...capture.commands.keys()]);
    const status = enriched.types.get('StatusInfo');
    expect(status?.doc?.since).toBeDefined();
    expect(status?.kind === 'struct' && status.members.every((m) => m.doc)).toBe(true);
    expect(enriched.commands.get('blockdev-add')?.doc?.text).toBeTruthy();
    // inherited members of a synthesized union base get the docs of the source base
    const base = enriched.types.get('BlockdevOptionsBase');
    expect(
      base?.kind === 'struct' && base.members.find((m) => m.name === 'node-name')?.doc,
    ).toBeTruthy();
    // nothing conditional is invented: the capture has no io_uring branch, the enriched IR neither
    const union = enriched.types.get('BlockdevOptions');
    expect(union?.kind === 'union' && union.branches.some((b) => b.case === 'io_uring')).toBe(
      false,
    );
  });
});
