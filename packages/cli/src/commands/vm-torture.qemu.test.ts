/**
 * `qmpkit vm torture` on the system's QEMU with the tiny test guest: 2 cycles exact (exit 0,
 * counter checked), a configuration that is not JSON exits 2. Longer runs and the cross-version
 * ones are in machine's `torture.qemu.test.ts` and `pnpm bench:vmstate`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { toJSON } from '@qmpkit/devices';
import { writeGuestImage } from '@qmpkit/testguest';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { qemuSuite, testVmConfig } from '../qemu.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-cli-torture-' });

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('qmpkit vm torture', () => {
  it('2 cycles of the test guest: exact, exit 0', async () => {
    const image = await writeGuestImage(path.join(suite.dir, 'guest.raw'), { intervalMs: 20 });
    const file = path.join(suite.dir, 'vm.json');
    writeFileSync(file, toJSON(testVmConfig({ boot: image }, { accel: ['tcg'] })));
    const result = await run('vm', 'torture', file, '--cycles', '2', '--counter', 'ser0', '--json');
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const json = JSON.parse(result.out) as { ok: boolean; cycles: unknown[]; accel: string };
    expect([json.ok, json.cycles.length, json.accel]).toEqual([true, 2, 'tcg']);
  }, 120_000);

  it('a configuration that is not JSON exits 2', async () => {
    const file = path.join(suite.dir, 'bad.json');
    writeFileSync(file, '{ machine: ');
    const result = await run('vm', 'torture', file, '--cycles', '1');
    expect(result.code).toBe(2);
    expect(result.err).toContain('not valid JSON');
  });
});
