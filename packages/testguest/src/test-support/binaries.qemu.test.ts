/**
 * Every binary the tests know really is the QEMU it claims to be: spawned the way tests spawn
 * it (`spawnQemu({ binary })`, with its `-L` data dir and module dir), its QMP greeting names
 * the version `--version` printed. (A 10.0 started without its module dir would load 7.2's
 * modules and fail, see `binary.qemu.test.ts` of `@qmpkit/machine`.)
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { QEMU_10, QEMU_SYSTEM, qemuBinaries, qemuSuite, spawnQemu } from './index.js';

describe('the binaries under test', () => {
  it('knows the system QEMU and QEMU 10.0', () => {
    expect(qemuBinaries().map((b) => b.id)).toEqual(['system', '10.0']);
    expect(QEMU_10.machineQemu).toBe('10.0');
    expect(QEMU_SYSTEM.machineQemu).toBe(QEMU_SYSTEM.system);
  });
});

for (const binary of [QEMU_SYSTEM, QEMU_10]) {
  describe(`QEMU ${binary.id} (${binary.description})`, () => {
    qemuSuite({ binary, prefix: `qmpkit-binaries-${binary.id}-` });

    it('greets over QMP with the version --version printed', async () => {
      const child = spawnQemu(
        ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'],
        { binary, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      const lines = createInterface({ input: child.stdout! });
      const [greeting] = (await once(lines, 'line')) as [string];
      const qemu = (JSON.parse(greeting) as { QMP: { version: { qemu: Record<string, number> } } })
        .QMP.version.qemu;
      expect({ major: qemu.major, minor: qemu.minor, micro: qemu.micro }).toEqual(binary.version);
      const exited = once(child, 'exit');
      child.stdin!.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
      await exited;
    });
  });
}
