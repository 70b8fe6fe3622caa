import { describe, expect, it } from 'vitest';
import { toArgv } from './argv.js';
import { assemblyPlan } from './assembly.js';
import { isConfigValidationError } from './errors.js';
import type { PlugStep } from './hotplug.js';
import type { VmConfig } from './model.js';
import { sampleConfig } from './sample.test-helper.js';

function label(step: PlugStep): string {
  const args = step.arguments as Record<string, unknown>;
  return `${step.execute} ${String(args.id ?? args['node-name'])}`;
}

const ids = (items: readonly { id?: string; 'node-name'?: string }[] | undefined) =>
  (items ?? []).map((i) => i.id ?? i['node-name']);

describe('assemblyPlan', () => {
  it('keeps the machine, what cannot be hot-plugged and what those use on the command line', () => {
    const plan = assemblyPlan(sampleConfig());
    // ISA serial + its chardev, the IDE disk + its nodes, pflash nodes, the generic pvpanic.
    expect(ids(plan.base.devices)).toEqual(['ide0', 'serial0', 'panic0']);
    expect(ids(plan.base.chardevs)).toEqual(['ser0']);
    expect(ids(plan.base.blockdevs)).toEqual([
      'scratch',
      'scratch-file',
      'fw-code-file',
      'fw-code',
      'fw-vars-file',
      'fw-vars',
    ]);
    expect(plan.base.objects).toEqual([]);
    expect(plan.base.netdevs).toEqual([]);
    expect(plan.base.machine).toEqual(sampleConfig().machine);
    expect(plan.base.staticArgs).toEqual(sampleConfig().staticArgs);
    // The rest in dependency order, as plug steps.
    expect(plan.steps.map(label)).toEqual([
      'object-add io0',
      'object-add tg0',
      'chardev-add con0',
      'netdev_add net0',
      'blockdev-add disk0-file',
      'blockdev-add base-file',
      'blockdev-add base',
      'blockdev-add disk0',
      'blockdev-add data-file',
      'blockdev-add data',
      'blockdev-add data-throttle',
      'device_add vd0',
      'device_add scsi0',
      'device_add sd0',
      'device_add nic0',
      'device_add vser0',
      'device_add vcon0',
    ]);
    // The base alone is a valid configuration with a command line.
    expect(() => toArgv(plan.base, { qmp: { args: [] } })).not.toThrow();
  });

  it('keeps what `keep` names, with its dependencies', () => {
    const plan = assemblyPlan(sampleConfig(), {
      keep: { chardevs: ['con0'], devices: ['vd0'] },
    });
    expect(ids(plan.base.chardevs)).toEqual(['ser0', 'con0']);
    expect(ids(plan.base.devices)).toEqual(['vd0', 'ide0', 'serial0', 'panic0']);
    expect(ids(plan.base.objects)).toEqual(['io0']);
    expect(ids(plan.base.blockdevs)).toEqual(
      expect.arrayContaining(['disk0', 'disk0-file', 'base', 'base-file']),
    );
    expect(plan.steps.map(label)).not.toContain('device_add vd0');
    expect(plan.steps.map(label)).toContain('device_add vcon0');
  });

  it('moves everything when everything can be hot-plugged', () => {
    const config: VmConfig = {
      machine: { type: 'pc' },
      memory: { size: 32 * 2 ** 20 },
      netdevs: [{ id: 'n0', type: 'user' }],
      devices: [{ driver: 'virtio-net-pci', id: 'nic0', netdev: 'n0' }],
    };
    const plan = assemblyPlan(config);
    expect(plan.base.devices).toEqual([]);
    expect(plan.steps.map(label)).toEqual(['netdev_add n0', 'device_add nic0']);
  });

  it('validates first', () => {
    const config: VmConfig = {
      machine: { type: 'pc' },
      memory: { size: 32 * 2 ** 20 },
      devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'missing' }],
    };
    let error: unknown;
    try {
      assemblyPlan(config);
    } catch (e) {
      error = e;
    }
    expect(isConfigValidationError(error)).toBe(true);
  });
});
