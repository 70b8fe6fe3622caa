/**
 * The QAPI source of QEMU 7.2 and our capture of Debian's qemu-system-x86_64 7.2 are two
 * descriptions of one schema. Their IRs must agree on commands, events, arguments (names,
 * optionality, types modulo integer width), return types, event data, enum values and union
 * branches. The only differences allowed are elements the source guards with an `if`
 * condition that this x86_64 build does not meet. Needs the source cache (`pnpm schemas:source`).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  diffSchemas,
  formatChange,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  type Schema,
} from '@qmpkit/codegen';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
const captureDir = path.join(repoRoot, 'schemas/qemu-7.2');

let source: Schema | undefined;
let capture: Schema;

beforeAll(() => {
  const names = JSON.parse(readFileSync(path.join(captureDir, 'names.json'), 'utf8')) as NameMap;
  capture = readIntrospection({
    file: 'schemas/qemu-7.2/query-qmp-schema.json',
    text: readFileSync(path.join(captureDir, 'query-qmp-schema.json'), 'utf8'),
    names,
  });
  if (existsSync(sourceMain)) source = loadQapiSource(sourceMain, { qemuVersion: '7.2' });
});

function needSource(ctx: TestContext): Schema {
  if (source) return source;
  if (process.env.CI === 'true')
    throw new Error(`${sourceMain} is missing: run \`pnpm schemas:source\` first`);
  ctx.skip('QEMU 7.2 QAPI source not fetched; run `pnpm schemas:source`');
}

describe('QEMU 7.2: source IR vs capture IR', () => {
  it('agree on every command and event, argument, return, enum value and branch (except unmet if-conditions)', (ctx) => {
    const src = needSource(ctx);
    const changes = diffSchemas(src, capture);
    const unexplained = changes.filter((c) => !(c.kind === 'removed' && c.if !== undefined));
    expect(unexplained.map(formatChange)).toEqual([]);
    // The explained ones really are conditional elements missing from the x86_64 build.
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.every((c) => c.kind === 'removed')).toBe(true);
  });

  it('has nothing in the capture that the source lacks', (ctx) => {
    const src = needSource(ctx);
    expect([...capture.commands.keys()].filter((c) => !src.commands.has(c))).toEqual([]);
    expect([...capture.events.keys()].filter((e) => !src.events.has(e))).toEqual([]);
    const implicitOnlyInCapture = [...capture.types.values()].filter(
      (t) => !src.types.has(t.name) && !t.implicit,
    );
    expect(implicitOnlyInCapture.map((t) => t.name)).toEqual([]);
  });

  it('names every masked type of the capture with its source name (names.json is current)', (ctx) => {
    needSource(ctx);
    const fallback = [...capture.types.values()].filter(
      (t) => t.implicit && t.implicit.role !== 'base' && !source!.types.has(t.name),
    );
    expect(fallback.map((t) => t.name)).toEqual([]);
  });
});
