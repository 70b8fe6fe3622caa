import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { GENERATOR_VERSION } from './version.js';

it('GENERATOR_VERSION matches the package version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  expect(GENERATOR_VERSION).toBe(pkg.version);
});
