import { spawnSync } from 'node:child_process';
import * as model from '@qmpkit/schema';
import { expect, it } from 'vitest';
import * as everything from './index.js';
import * as schemaOnly from './schema.js';

it('the ./schema entry is @qmpkit/schema plus the generator version', () => {
  expect(Object.keys(schemaOnly).sort()).toEqual(
    [...Object.keys(model), 'GENERATOR_VERSION'].sort(),
  );
});

it('the main entry is the ./schema entry plus the emitters', () => {
  const main = Object.keys(everything).sort();
  const schema = Object.keys(schemaOnly).sort();
  expect(main.filter((name) => !schema.includes(name))).toEqual([
    'FILE_SUFFIX',
    'emitMerged',
    'emitTypeScript',
  ]);
  expect(schema.filter((name) => !main.includes(name))).toEqual([]);
});

it('the ./schema entry does not load the TypeScript compiler', () => {
  // A fresh process: vitest itself may already have `typescript` in its module cache.
  const script = `
    import { createRequire } from 'node:module';
    await import('@qmpkit/codegen/schema');
    const loaded = Object.keys(createRequire(import.meta.url).cache).some((f) => /[\\\\/]typescript[\\\\/]lib[\\\\/]/.test(f));
    process.stdout.write(String(loaded));
  `;
  const result = spawnSync(
    process.execPath,
    ['--conditions=@qmpkit/source', '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: import.meta.dirname, encoding: 'utf8' },
  );
  expect(result.stderr).toBe('');
  expect(result.stdout).toBe('false');
}, 30_000); // a fresh Node process with tsx: seconds on a busy machine
