import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireQemu } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';

describe('examples/basic.ts', () => {
  it('runs: chooses a strategy, saves, rolls back, continues from the save point', async (ctx) => {
    requireQemu(ctx);
    const script = fileURLToPath(new URL('../../examples/basic.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@qmpkit/source', '--import', 'tsx', script],
      { timeout: 50_000 },
    );
    expect(stdout).toMatch(/^external: chosen — /m);
    const saved = /^saved at counter (\d+): external/m.exec(stdout);
    const next = /^loaded in \d+ ms; next counter (\d+)$/m.exec(stdout);
    expect(Number(next?.[1])).toBe(Number(saved?.[1]) + 1);
    expect(stdout).toContain("[ 'before-test (external)' ]");
  });
});
