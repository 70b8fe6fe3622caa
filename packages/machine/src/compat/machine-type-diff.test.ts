import { describe, expect, it } from 'vitest';
import {
  agrees,
  compatValueMatches,
  diffMachineReports,
  type MachineObject,
  type MachineTypeReport,
} from './machine-type-diff.js';

function report(objects: MachineObject[], cpu = 'qemu64-x86_64-cpu'): MachineTypeReport {
  return {
    binary: { path: 'qemu', version: '1.0.0' },
    machineType: 'pc-i440fx-7.2',
    method: 'qom instances',
    defaultCpuType: cpu,
    cpuTypes: [cpu],
    compatProps: undefined,
    objects,
  };
}

const obj = (key: string, type: string, properties: Record<string, unknown>): MachineObject => ({
  key,
  path: `/machine/unattached/${key}`,
  qomPath: `/machine/unattached/${key}`,
  type,
  properties,
});

describe('agrees', () => {
  it('struct members and CPUID words only one side has are not differences', () => {
    expect(agrees('smp', { cpus: 1 }, { cpus: 1, books: 1 })).toBe(true);
    expect(agrees('smp', { cpus: 1 }, { cpus: 2, books: 1 })).toBe(false);
    const w = (eax: number, features: number) => ({
      'cpuid-register': 'EDX',
      'cpuid-input-eax': eax,
      features,
    });
    expect(agrees('feature-words', [w(1, 5)], [w(7, 9), w(1, 5)])).toBe(true);
    expect(agrees('feature-words', [w(1, 5)], [w(1, 4)])).toBe(false);
  });

  it('rombar 1 and -1 both mean enabled; 0 does not', () => {
    expect(agrees('rombar', 1, -1)).toBe(true);
    expect(agrees('rombar', 0, -1)).toBe(false);
    expect(agrees('romsize', 1, -1)).toBe(false);
  });

  it('compat values read as instance values', () => {
    expect(compatValueMatches(true, 'on')).toBe(true);
    expect(compatValueMatches(false, 'true')).toBe(false);
    expect(compatValueMatches(39, '39')).toBe(true);
    expect(compatValueMatches('legacy', 'legacy')).toBe(true);
  });
});

describe('diffMachineReports', () => {
  it('the same reports: no differences', () => {
    const a = report([obj('PIIX3#0', 'PIIX3', { rombar: 1 })]);
    expect(diffMachineReports(a, a).differences).toEqual([]);
  });

  it('every kind: value, missing, added, type, CPU; one-sided properties are notes', () => {
    const a = report([
      obj('PIIX3#0', 'PIIX3', { 'x-old': 1, noreboot: true }),
      obj('fdc#0', 'isa-fdc', {}),
      obj('/machine/peripheral/nic', 'e1000', {}),
    ]);
    const b = report(
      [
        obj('PIIX3#0', 'PIIX3', { noreboot: false, 'x-new': 2 }),
        obj('hpet#0', 'hpet', {}),
        obj('/machine/peripheral/nic', 'virtio-net-pci', {}),
      ],
      'max-x86_64-cpu',
    );
    const d = diffMachineReports(a, b);
    expect(d.differences.map((x) => [x.kind, x.property ?? x.path ?? ''])).toEqual([
      ['cpu-model', ''],
      ['cpu-model', ''],
      ['property-value', 'noreboot'],
      ['device-missing', '/machine/unattached/fdc#0'],
      ['device-type', '/machine/unattached//machine/peripheral/nic'],
      ['device-added', '/machine/unattached/hpet#0'],
    ]);
    expect(d.onlyOnOneSide.map((n) => `${n.side}:${n.property}`)).toEqual([
      'source:x-old',
      'destination:x-new',
    ]);
  });
});
