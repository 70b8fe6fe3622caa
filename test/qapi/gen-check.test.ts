/**
 * `pnpm gen:check` on generated output that is not committed: it must fail when a file of a
 * generation was edited by hand (or left over), and when two generations differ.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareGenerations,
  compareWithDirectory,
  defaultVersion,
  type Generation,
  generateAll,
  namedDefault,
  writeGeneration,
} from '../../packages/qapi/scripts/generate.js';

let generation: Generation;
let dir: string;

beforeAll(() => {
  generation = generateAll();
  dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-gen-check-'));
  writeGeneration(generation, dir);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('gen:check', () => {
  it('accepts a fresh generation, and a second generation is byte-identical', () => {
    expect(compareWithDirectory(generation, dir)).toEqual([]);
    expect(compareGenerations(generation, generateAll())).toEqual([]);
  }, 120_000);

  it('fails on a hand edit of a generated file, and on a file it did not write', () => {
    const file = path.join(dir, 'qemu-7.2', 'block-core.generated.ts');
    const original = readFileSync(file, 'utf8');
    appendFileSync(file, 'export type HandEdit = true;\n');
    writeFileSync(path.join(dir, 'qemu-7.2', 'extra.generated.ts'), 'export {};\n');
    const problems = compareWithDirectory(generation, dir);
    expect(problems).toContainEqual(
      expect.stringMatching(/^differs: .*block-core\.generated\.ts$/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^stale: .*extra\.generated\.ts$/));
    // Writing the generation again repairs both.
    writeGeneration(generation, dir);
    expect(readFileSync(file, 'utf8')).toBe(original);
    expect(compareWithDirectory(generation, dir)).toEqual([]);
  });

  it('fails when two generations differ', () => {
    const [first, ...rest] = generation.outputs;
    const changed = new Map(first!.files);
    changed.set('index.generated.ts', `${changed.get('index.generated.ts')}// nondeterministic\n`);
    const other: Generation = { ...generation, outputs: [{ ...first!, files: changed }, ...rest] };
    expect(compareGenerations(generation, other)).toEqual([
      `${first!.dirName}/index.generated.ts: differs between runs`,
    ]);
  });

  it('the default version is the one src/index.ts names, and must be a capture of a real binary', () => {
    expect(defaultVersion()).toBe(generation.defaultVersion);
    const kinds: Record<string, 'capture' | 'libvirt-recording'> = {
      'qemu-7.1': 'libvirt-recording',
      'qemu-7.2': 'capture',
      'qemu-10.0': 'capture',
    };
    const manifest = (d: string) => ({ source: { kind: kinds[d]! } });
    // A newer capture does not move the default: the named one stays.
    expect(defaultVersion(Object.keys(kinds), manifest, '7.2')).toBe('7.2');
    expect(defaultVersion(Object.keys(kinds), manifest, '10.0')).toBe('10.0');
    expect(() => defaultVersion(Object.keys(kinds), manifest, '7.1')).toThrow(
      /7\.1 is not a capture of a real binary/,
    );
    expect(() => defaultVersion(Object.keys(kinds), manifest, '9.2')).toThrow(
      /has no schemas\/qemu-9\.2/,
    );
    expect(namedDefault("export const DEFAULT_QEMU_VERSION = '10.0';\n")).toBe('10.0');
    expect(() => namedDefault('export {};\n')).toThrow(/names no DEFAULT_QEMU_VERSION/);
  });
});
