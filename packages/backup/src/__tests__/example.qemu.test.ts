import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireQemu } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';

describe('examples/basic.ts', () => {
  it('runs: a full and an incremental of two disks, both restored', async (ctx) => {
    requireQemu(ctx);
    const script = fileURLToPath(new URL('../../examples/basic.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@qmpkit/source', '--import', 'tsx', script],
      { timeout: 50_000 },
    );
    expect(stdout).toMatch(/^full 0001: checkpoint qmpkit-[0-9a-f]{8}-0001$/m);
    expect(stdout).toContain('incremental 0002: copied disk0 0 KiB, disk1 256 KiB');
    expect(stdout).toContain("[ '0001 full', '0002 incremental' ]");
    expect(stdout).toContain('restored 0002: disk0, disk1');
  });
});
