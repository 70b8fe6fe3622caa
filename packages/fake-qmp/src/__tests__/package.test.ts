import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { dataPath, generateData, KINDS, VERSIONS } from '../../scripts/generate-data.js';

const root = path.join(import.meta.dirname, '../..');

describe('package', () => {
  it('the README example is examples/basic.ts verbatim (which tsc checks)', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const example = readFileSync(path.join(root, 'examples/basic.ts'), 'utf8');
    const block = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example);
  });

  it('the storage-daemon example is in the README verbatim and runs', async () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const example = readFileSync(path.join(root, 'examples/storage-daemon.ts'), 'utf8');
    const block = /## The storage daemon[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example);
    const printed: unknown[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      printed.push(...args);
    });
    try {
      await import('../../examples/storage-daemon.js');
    } finally {
      log.mockRestore();
    }
    expect(printed).toContain('CommandNotFound');
    expect(printed.at(-1)).toBe(0);
  });

  it.each(VERSIONS.flatMap((v) => KINDS.map((k) => [v, k] as const)))(
    'the data module for QEMU %s (%s) is generated from schemas/ (run scripts/generate-data.ts)',
    (v, kind) => {
      expect(readFileSync(dataPath(v, kind), 'utf8')).toBe(generateData(v, kind));
    },
  );

  it('keeps the runtime free of repository paths', () => {
    const src = readFileSync(path.join(root, 'src/server/fake.ts'), 'utf8');
    expect(src).not.toMatch(/schemas\//);
  });
});
