import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { qemuSuite } from './test-support/index.js';

qemuSuite();

describe('examples/boot.ts', () => {
  it('runs and prints counters, an echo and the disk record', async () => {
    const script = fileURLToPath(new URL('../examples/boot.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@qmpkit/source', '--import', 'tsx', script],
      { timeout: 50_000 },
    );
    expect(stdout).toMatch(/^counters 1, 2, 3; first after \d+ ms$/m);
    expect(stdout).toContain('echoed "E=x"');
    expect(stdout).toMatch(/^last C= line (\d+), LBA 1 holds (\d+)$/m);
  });
});
