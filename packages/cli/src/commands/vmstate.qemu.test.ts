/**
 * `qmpkit vmstate` on real binaries: dump to a file, diff a binary against itself (exit 0),
 * 7.2 against 10.0 (exit 3 with the count; 10.0 from `pnpm qemu:fetch 10.0`, CI fetches it),
 * and a machine type the binary lacks (exit 1, QEMU's reason).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qemuCacheDir } from '@qmpkit/machine';
import { afterAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { QEMU, SKIP_REASON, skipQemu } from '../qemu.test-support.js';

const cacheDir = path.resolve(import.meta.dirname, '../../../../.cache');
const have10 = existsSync(path.join(qemuCacheDir(cacheDir, '10.0'), 'manifest.json'));
const skip10 = skipQemu || (!have10 && process.env.CI !== 'true');
const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-cli-vmstate-q-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe.skipIf(skipQemu)(`qmpkit vmstate on ${QEMU}${SKIP_REASON}`, () => {
  it('dump --out writes the dump; diff of that file against the binary is compatible', async () => {
    const out = path.join(tmp, 'pc.json');
    const dump = await run(
      'vmstate',
      'dump',
      '--qemu',
      QEMU,
      '--machine',
      'pc-i440fx-7.2',
      '--out',
      out,
    );
    expect(dump.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).vmschkmachine).toEqual({ Name: 'pc-i440fx-7.2' });
    const diff = await run('vmstate', 'diff', out, QEMU, '--machine', 'pc-i440fx-7.2');
    expect(diff.code).toBe(0);
    expect(diff.out).toContain('compatible');
  });

  it('a machine type the binary lacks exits 1 with the reason', async () => {
    const result = await run('vmstate', 'dump', '--qemu', QEMU, '--machine', 'pc-q35-99.0');
    expect(result.code).toBe(1);
    expect(result.err).toContain('has no machine type "pc-q35-99.0"');
  });
});

describe.skipIf(skip10)(
  `qmpkit vmstate diff 7.2 → 10.0${skip10 && !skipQemu ? ' (skipped: QEMU 10.0 not fetched; run `pnpm qemu:fetch 10.0`, CI does)' : SKIP_REASON}`,
  () => {
    it('exits 3 and prints the problems with their count', async () => {
      const result = await run(
        'vmstate',
        'diff',
        QEMU,
        '10.0',
        '--machine',
        'pc-q35-7.2',
        '--cache-dir',
        cacheDir,
        '--json',
      );
      expect(result.code).toBe(3);
      const { problems } = JSON.parse(result.out) as { problems: { section: string }[] };
      // The sections are checked one by one, with reasons, in machine's vmstate.qemu.test.ts.
      expect(problems.map((p) => p.section)).toContain('hpet');
      expect(problems.length).toBeGreaterThan(0);
    });
  },
);
