import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

it('has no dependencies: installing it (and so transport, fake-qmp, the CLI) pulls nothing', () => {
  const manifest = JSON.parse(
    readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
  expect(manifest.dependencies).toBeUndefined();
  expect(manifest.peerDependencies).toBeUndefined();
  expect(manifest.optionalDependencies).toBeUndefined();
});

it('imports only node: builtins and its own modules', async () => {
  const { readdirSync } = await import('node:fs');
  const dir = new URL('./', import.meta.url);
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(
    (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'),
  );
  const foreign = files.flatMap((f) =>
    [...readFileSync(new URL(f, dir), 'utf8').matchAll(/^(?:import|export)[^;]*? from '([^']+)'/gm)]
      .map((m) => m[1]!)
      .filter((s) => !s.startsWith('.') && !s.startsWith('node:'))
      .map((s) => `${f}: ${s}`),
  );
  expect(foreign).toEqual([]);
});
