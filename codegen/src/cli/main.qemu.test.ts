import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { privateTempDir, QEMU, requireQemu } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { main } from './main.js';

it('generate --from-qemu runs the binary and emits bindings for its version', {
  timeout: 60_000,
}, async (ctx) => {
  requireQemu(ctx); // skips with the reason when QEMU is missing; fails with CI=true
  const { dir: out, remove } = privateTempDir('qmpkit-codegen-qemu-');
  try {
    const printed: string[] = [];
    expect(
      await main(['generate', '--from-qemu', QEMU.system, '--out', out], (t) => printed.push(t)),
    ).toBe(0);
    const index = readFileSync(path.join(out, 'index.generated.ts'), 'utf8');
    expect(index).toMatch(/export const qemuVersion = "\d+\.\d+\.\d+"/);
    expect(readFileSync(path.join(out, 'qmp-commands.generated.ts'), 'utf8')).toContain(
      '"query-status": {',
    );
  } finally {
    remove();
  }
});

it('generate --from-qemu with a missing binary fails clearly', async () => {
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    errors.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    expect(
      await main(['generate', '--from-qemu', '/nonexistent/qemu-system-x86_64', '--out', tmpdir()]),
    ).toBe(1);
  } finally {
    process.stderr.write = write;
  }
  expect(errors.join('')).toMatch(/cannot start \/nonexistent\/qemu-system-x86_64: spawn .*ENOENT/);
});
