import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAcceleratorProbeError, parseAccelHelp, probeAccelerators } from './accel.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-accel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in binary that prints `-accel help` output like QEMU 7.2 does. */
function fakeBinary(name: string, accels: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    `#!/bin/sh\n[ "$1" = -accel ] && [ "$2" = help ] || exit 1\nprintf 'Accelerators supported in QEMU binary:\\n${accels.join('\\n')}\\n'\n`,
  );
  chmodSync(file, 0o700);
  return file;
}

describe('probeAccelerators', () => {
  it('parses the list QEMU prints', () => {
    expect(parseAccelHelp('Accelerators supported in QEMU binary:\ntcg\nkvm\n')).toEqual([
      'tcg',
      'kvm',
    ]);
  });

  it('offers only tcg when the KVM device is missing (no "falling back to tcg" noise)', async () => {
    const probe = await probeAccelerators(fakeBinary('q1', ['tcg', 'kvm']), {
      kvmDevice: path.join(dir, 'no-kvm'),
    });
    expect(probe.compiled).toEqual(['tcg', 'kvm']);
    expect(probe.kvm).toEqual({ usable: false, reason: `${path.join(dir, 'no-kvm')}: ENOENT` });
    expect(probe.usable).toEqual(['tcg']);
  });

  it('offers kvm first when the device opens read-write', async () => {
    const device = path.join(dir, 'kvm-ok');
    writeFileSync(device, '');
    const probe = await probeAccelerators(fakeBinary('q2', ['tcg', 'kvm']), { kvmDevice: device });
    expect(probe.usable).toEqual(['kvm', 'tcg']);
  });

  it('does not offer kvm when the device is read-only for this user', async () => {
    const device = path.join(dir, 'kvm-ro');
    if (process.getuid?.() === 0) {
      // Root opens any file read-write whatever its mode; a directory it cannot (EISDIR).
      mkdirSync(device);
    } else {
      writeFileSync(device, '');
      chmodSync(device, 0o400);
    }
    const probe = await probeAccelerators(fakeBinary('q3', ['tcg', 'kvm']), { kvmDevice: device });
    expect(probe.kvm.usable).toBe(false);
    expect(probe.usable).toEqual(['tcg']);
  });

  it('does not offer kvm from a binary built without it', async () => {
    const device = path.join(dir, 'kvm-ok2');
    writeFileSync(device, '');
    const probe = await probeAccelerators(fakeBinary('q4', ['tcg']), { kvmDevice: device });
    expect(probe.usable).toEqual(['tcg']);
  });

  it('fails with a typed error when the binary cannot be run', async () => {
    const error = await probeAccelerators(path.join(dir, 'missing-qemu')).catch((e: unknown) => e);
    expect(isAcceleratorProbeError(error)).toBe(true);
  });
});
