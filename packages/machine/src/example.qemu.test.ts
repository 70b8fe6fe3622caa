import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireQemu } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';

describe('examples/basic.ts', () => {
  it('runs: counter on COM1, hot-plug and unplug, clean exit', async (ctx) => {
    requireQemu(ctx);
    const script = fileURLToPath(new URL('../examples/basic.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@qmpkit/source', '--import', 'tsx', script],
      { timeout: 50_000 },
    );
    expect(stdout).toMatch(/^QEMU 7\.2, pid \d+, tcg$/m);
    expect(stdout).toMatch(/^counter \d+ on COM1$/m);
    expect(stdout).toMatch(/^PCI: .*vd0, nic0$/m);
    expect(stdout).toContain('state file devices: boot0, com1, vd0, nic0');
    expect(stdout).toContain('"blockdevs":["data","data-file"]');
    expect(stdout).toContain('exit { code: 0, signal: null }');
  });
});
