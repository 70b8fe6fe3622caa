/**
 * Output generated from the QEMU 7.2 QAPI source — with QEMU's docs in the JSDoc — compiles
 * with `tsc --noEmit --strict`. It is written into the gitignored .cache/ (it carries GPL
 * prose and is never committed). The capture's output compiles as part of `pnpm typecheck`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { emitTypeScript, loadQapiSource } from '@qmpkit/codegen';
import { expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');

it('compiles the bindings generated from QEMU 7.2 source with tsc --strict', {
  timeout: 120_000,
}, (ctx) => {
  if (!existsSync(sourceMain)) {
    if (process.env.CI === 'true')
      throw new Error(`${sourceMain} is missing: run \`pnpm schemas:source\` first`);
    ctx.skip('QEMU 7.2 QAPI source not fetched; run `pnpm schemas:source`');
  }
  const out = path.join(repoRoot, '.cache/tsc-check/qemu-7.2-source');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const runtime = path.relative(out, path.join(repoRoot, 'packages/qapi/src/runtime/index.js'));
  const files = emitTypeScript(loadQapiSource(sourceMain, { qemuVersion: '7.2' }), {
    runtimeImport: runtime,
    generatorVersion: 'test',
    inputDescription: 'qapi-schema.json',
    qemuVersion: '7.2',
  });
  for (const [name, text] of files) writeFileSync(path.join(out, name), text);
  expect(files.get('block-core.generated.ts')).toMatch(/@since \d/); // docs made it in
  writeFileSync(
    path.join(out, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        // The runtime imports @qmpkit/schema/info, which resolves to source only under this
        // condition (the workspace is not built).
        customConditions: ['@qmpkit/source'],
        target: 'es2022',
        noEmit: true,
        skipLibCheck: true,
        types: [],
      },
      include: ['*.ts'],
    }),
  );
  const tsc = spawnSync(
    process.execPath,
    [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', out],
    {
      encoding: 'utf8',
    },
  );
  expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
  expect(tsc.status).toBe(0);
});
