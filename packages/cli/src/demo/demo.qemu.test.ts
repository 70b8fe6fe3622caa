/**
 * `qmpkit demo`, the README's main job: with QEMU (a real tour with every snapshot strategy)
 * and with QEMU absent from PATH (the same tour against the embedded fake server).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { skipQemu } from '../qemu.test-support.js';

const BIN = path.join(import.meta.dirname, '../bin.ts');

describe('qmpkit demo', () => {
  it('with QEMU: boots the guest, hot-plugs, and every strategy gets the guest back to its save point', {
    timeout: 120_000,
  }, async (ctx) => {
    if (skipQemu) ctx.skip('qemu-system-x86_64 is not installed');
    const io = recordingIo({ PATH: process.env.PATH });
    expect(await main(['demo', '--accel', 'tcg'], io)).toBe(0);
    const out = io.out();
    expect(out).toMatch(/QEMU 7\.2\.\d+ \(pid \d+, accelerator tcg\) ready/);
    expect(out).toMatch(/query-status → running/);
    expect(out).toMatch(/virtio-blk-pci vd0 plugged/);
    expect(out).toMatch(/unplugged after DEVICE_DELETED/);
    for (const kind of ['internal-hmp', 'internal-jobs', 'external']) {
      expect(out).toMatch(
        new RegExp(
          `${kind}: saved after C=\\d+, ran on to C=\\d+, loaded → COM1 continues at C=\\d+ \\(back at the save point\\)`,
        ),
      );
      expect(out).toMatch(
        new RegExp(`^${kind} +\\d+ ms +\\d+ ms +\\d+ ms +[\\d.]+ (KiB|MiB) +ok$`, 'm'),
      );
    }
  });

  it('without QEMU on PATH: says so and runs the tour against the fake server (a real process)', {
    timeout: 60_000,
  }, () => {
    // PATH holds only a directory with `node` in it: no qemu-system-x86_64, no qemu-img.
    const bin = mkdtempSync(path.join(tmpdir(), 'qmpkit-demo-path-'));
    symlinkSync(process.execPath, path.join(bin, 'node'));
    const result = spawnSync(
      process.execPath,
      ['--conditions=@qmpkit/source', '--import', 'tsx', BIN, 'demo'],
      { encoding: 'utf8', env: { ...process.env, PATH: bin, NO_COLOR: '1' } },
    );
    rmSync(bin, { recursive: true, force: true });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /qemu-system-x86_64 is not on PATH .* running the tour against the embedded fake QMP server/,
    );
    expect(result.stdout).toMatch(/query-version → QEMU 7\.2\.22/);
    expect(result.stdout).toMatch(/device_del vd0 → DEVICE_DELETED/);
    expect(result.stdout).toMatch(/^internal-jobs +\d+ ms +\d+ ms/m);
    expect(result.stdout).toMatch(/migration stream [\d.]+ (B|KiB) written and fsynced/);
  });
});
