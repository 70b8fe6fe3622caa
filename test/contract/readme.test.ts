import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { scenarios } from './scenarios.js';

it('test/contract/README.md lists every scenario', () => {
  const readme = readFileSync(path.join(import.meta.dirname, 'README.md'), 'utf8');
  for (const s of scenarios) expect(readme).toContain(s.name);
  expect(scenarios.length).toBeGreaterThanOrEqual(25);
});
