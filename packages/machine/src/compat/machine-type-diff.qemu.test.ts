/**
 * Machine-type diff on real binaries: the system's QEMU 7.2 and 10.0 (`pnpm qemu:fetch 10.0`;
 * CI fetches it). pc-q35-7.2 gives the guest the same machine on both; 10.0 reports compat
 * props and every one that applies to this board agrees with the instances, 7.2 reports none;
 * `device-list-properties` shows the static class default (the reason values are read from
 * instances); a `-global` and another `-cpu` on one side are found and named; a machine type
 * one binary lacks and a binary that is not QEMU are refused before anything starts.
 */
import { QEMU, QEMU_10, qemuSuite, REPO_CACHE_DIR } from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveQemuBinary } from '../binary.js';
import { isMachineTypeError, isQemuBinaryError } from '../errors.js';
import { launch } from '../machine.js';
import {
  diffMachineReports,
  diffMachineType,
  inspectMachineType,
  type MachineTypeReport,
} from './machine-type-diff.js';

const suite = qemuSuite({ binary: QEMU_10, prefix: 'qmpkit-machine-diff-' });
const options = () => ({ cacheDir: REPO_CACHE_DIR, runDirParent: suite.dir });
const TYPE = 'pc-q35-7.2';

describe(`machine-type diff ${QEMU.description} vs ${QEMU_10.description}`, () => {
  let old: MachineTypeReport;
  let next: MachineTypeReport;
  beforeAll(async () => {
    if (QEMU_10.missing !== undefined) return;
    old = await inspectMachineType(QEMU.machineQemu, TYPE, options());
    next = await inspectMachineType(QEMU_10.machineQemu, TYPE, options());
  }, 120_000);

  it('pc-q35-7.2: the same machine on both; each side says which method it used', () => {
    expect(old.method).toBe('qom instances');
    expect(old.compatProps).toBeUndefined();
    expect(next.method).toBe('query-machines compat-props + qom instances');
    // The board: i440fx's successor's LPC, the default CPU, the default NIC of q35.
    expect(old.objects.map((o) => o.type)).toEqual(
      expect.arrayContaining(['ICH9-LPC', 'mch', 'e1000e', 'qemu64-x86_64-cpu']),
    );
    expect(old.cpuTypes).toEqual(['qemu64-x86_64-cpu']);
    const diff = diffMachineReports(old, next);
    expect(diff.differences).toEqual([]);
    // New knobs of 10.0 (and a few removed ones) exist, and are notes, not differences.
    expect(diff.onlyOnOneSide.length).toBeGreaterThan(0);
  });

  it("10.0's compat props that apply to this board all agree with the instances", () => {
    const applied = (next.compatProps ?? []).filter((c) => c.instances.length > 0);
    expect(applied.flatMap((c) => c.disagreeing)).toEqual([]);
    const names = applied.map((c) => `${c.qomType}.${c.property}=${c.value}`);
    // hw_compat_7_2 / pc_compat_7_2 entries on the devices this board has.
    expect(names).toEqual(
      expect.arrayContaining([
        'ICH9-LPC.noreboot=true',
        'e1000e.migrate-timadj=off',
        'pci-device.x-pcie-err-unc-mask=off',
      ]),
    );
  });

  it("device-list-properties gives the static class default, not the machine type's value", async () => {
    const lpc = next.objects.find((o) => o.type === 'ICH9-LPC');
    expect(lpc?.properties.noreboot).toBe(true);
    // The same question asked of the class on the same binary and machine type.
    const m = suite.adopt(
      await launch(
        { machine: { type: TYPE }, memory: { size: 16 * 1024 * 1024 }, paused: true },
        {
          qemu: await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR }),
          stateFile: false,
          runDirParent: suite.dir,
          accel: ['tcg'],
        },
      ),
    );
    try {
      const props = await m.qmp.execute('device-list-properties', { typename: 'ICH9-LPC' });
      const noreboot = props.find((p) => p.name === 'noreboot');
      expect(noreboot?.['default-value']).toBe(false);
    } finally {
      await m.stop();
    }
  });

  it('a -global and another CPU model on one side are differences, named', async () => {
    const changed = await inspectMachineType(QEMU.machineQemu, TYPE, {
      ...options(),
      config: {
        machine: { type: TYPE },
        memory: { size: 32 * 1024 * 1024 },
        nodefaults: false,
        cpu: 'max',
        staticArgs: ['-global', 'ICH9-LPC.noreboot=false'],
      },
    });
    const diff = diffMachineReports(changed, next);
    const lpc = diff.differences.find((d) => d.property === 'noreboot');
    expect(lpc).toMatchObject({ kind: 'property-value', source: false, destination: true });
    expect(lpc?.path).toMatch(/ICH9-LPC/);
    expect(diff.differences).toContainEqual(
      expect.objectContaining({
        kind: 'cpu-model',
        source: ['max-x86_64-cpu'],
        destination: ['qemu64-x86_64-cpu'],
      }),
    );
    expect(diff.differences).toContainEqual(
      expect.objectContaining({ kind: 'device-missing', source: 'max-x86_64-cpu' }),
    );
  }, 60_000);

  it('a machine type one binary lacks, a binary that is not QEMU: refused before a start', async () => {
    const missing = await diffMachineType(
      QEMU.machineQemu,
      QEMU_10.machineQemu,
      'pc-q35-10.0',
      options(),
    ).catch((e: unknown) => e);
    expect(isMachineTypeError(missing) && [missing.machineType, missing.binaryVersion]).toEqual([
      'pc-q35-10.0',
      expect.stringMatching(/^7\.2\./),
    ]);
    const notQemu = await inspectMachineType(process.execPath, TYPE, options()).catch(
      (e: unknown) => e,
    );
    expect(isQemuBinaryError(notQemu) && notQemu.problem).toBe('not-qemu');
  });
});
