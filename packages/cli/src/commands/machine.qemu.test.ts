/**
 * `qmpkit machine diff` on real binaries: pc-i440fx-7.2 on the system's 7.2 and on 10.0
 * (`pnpm qemu:fetch 10.0`; CI fetches it) is the same machine (exit 0, each side's method
 * printed); a machine type one binary lacks exits 1; a binary that is not QEMU exits 2.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { qemuCacheDir } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { QEMU, SKIP_REASON, skipQemu } from '../qemu.test-support.js';

const cacheDir = path.resolve(import.meta.dirname, '../../../../.cache');
const have10 = existsSync(path.join(qemuCacheDir(cacheDir, '10.0'), 'manifest.json'));
const skip10 = skipQemu || (!have10 && process.env.CI !== 'true');

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const diff = (machine: string, ...more: string[]) =>
  run(
    'machine',
    'diff',
    '--qemu',
    QEMU,
    '--qemu',
    '10.0',
    '--machine',
    machine,
    '--cache-dir',
    cacheDir,
    ...more,
  );

describe.skipIf(skip10)(
  `qmpkit machine diff 7.2 vs 10.0${skip10 && !skipQemu ? ' (skipped: QEMU 10.0 not fetched; run `pnpm qemu:fetch 10.0`, CI does)' : SKIP_REASON}`,
  () => {
    it('pc-i440fx-7.2 is the same machine on both: exit 0, --json has both reports', async () => {
      const result = await diff('pc-i440fx-7.2', '--json');
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      const json = JSON.parse(result.out) as {
        differences: unknown[];
        source: { method: string; binary: { version: string }; objects: { type: string }[] };
        destination: { method: string; compatProps: { disagreeing: unknown[] }[] };
      };
      expect(json.differences).toEqual([]);
      expect(json.source.binary.version).toMatch(/^7\.2\./);
      expect(json.source.method).toBe('qom instances');
      expect(json.destination.method).toBe('query-machines compat-props + qom instances');
      expect(json.destination.compatProps.flatMap((c) => c.disagreeing)).toEqual([]);
      expect(json.source.objects.map((o) => o.type)).toEqual(
        expect.arrayContaining(['PIIX3', 'i440FX', 'piix3-ide', 'e1000', 'VGA']),
      );
    }, 120_000);

    it('a machine type the source lacks exits 1 before anything starts', async () => {
      const result = await diff('pc-i440fx-10.0');
      expect(result.code).toBe(1);
      expect(result.err).toContain("has no machine type 'pc-i440fx-10.0'");
    });

    it('a binary that is not QEMU exits 2; one --qemu is a usage error (2)', async () => {
      const notQemu = await run(
        'machine',
        'diff',
        '--qemu',
        process.execPath,
        '--qemu',
        QEMU,
        '--machine',
        'pc-i440fx-7.2',
      );
      expect(notQemu.code).toBe(2);
      expect(notQemu.err).toContain('did not print "QEMU emulator version');
      const once = await run('machine', 'diff', '--qemu', QEMU, '--machine', 'pc-i440fx-7.2');
      expect(once.code).toBe(2);
      expect(once.err).toContain('exactly twice');
    });
  },
);
