import type { Commands } from '@qmpkit/qapi';
import { describe, expectTypeOf, it } from 'vitest';
import type { DriverProps } from './drivers.js';
import type { DeviceDelStep, PlugStep, QmpStep, UnplugStep } from './hotplug.js';
import type { BlockNode, DeviceConfig, KnownDevice, VmConfig } from './model.js';

describe('@qmpkit/devices types', () => {
  it('types known device properties from the driver table', () => {
    type Blk = DriverProps<'virtio-blk-pci'>;
    expectTypeOf<Blk['drive']>().toEqualTypeOf<string>();
    expectTypeOf<Blk['bootindex']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<Blk['write-cache']>().toEqualTypeOf<'on' | 'off' | 'auto' | undefined>();
    expectTypeOf<Extract<KnownDevice, { driver: 'scsi-hd' }>>().toHaveProperty('scsi-id');

    const ok: DeviceConfig = { driver: 'virtio-blk-pci', id: 'vd0', drive: 'd', bootindex: 1 };
    // @ts-expect-error drive is required for virtio-blk-pci
    const missingDrive: DeviceConfig = { driver: 'virtio-blk-pci', id: 'vd0' };
    // @ts-expect-error bootindex is an integer (JSON -device is typed)
    const stringIndex: DeviceConfig = {
      driver: 'virtio-blk-pci',
      id: 'vd0',
      drive: 'd',
      bootindex: '1',
    };
    // @ts-expect-error not a property of virtio-net-pci in the model
    const typo: DeviceConfig = { driver: 'virtio-net-pci', id: 'n', netdev: 'x', netdve: 'y' };
    // @ts-expect-error devices need an id
    const noId: DeviceConfig = { driver: 'virtio-balloon-pci' };
    const generic: DeviceConfig = { driver: 'usb-tablet', id: 't', props: { port: '1' } };
    expectTypeOf([ok, missingDrive, stringIndex, typo, noId, generic]).toBeArray();
  });

  it('block nodes are BlockdevOptions with a required node name', () => {
    const node: BlockNode = { driver: 'qcow2', 'node-name': 'd', file: 'f', backing: null };
    // @ts-expect-error node-name is required in the model
    const anonymous: BlockNode = { driver: 'null-co' };
    // @ts-expect-error QAPI types still apply: qcow2 needs a file
    const noFile: BlockNode = { driver: 'qcow2', 'node-name': 'd' };
    expectTypeOf([node, anonymous, noFile]).toBeArray();
  });

  it('hot-plug steps are typed by the Commands map', () => {
    expectTypeOf<QmpStep<'blockdev-add'>['arguments']>().toEqualTypeOf<
      Commands['blockdev-add']['args']
    >();
    expectTypeOf<DeviceDelStep['awaitEvent']['event']>().toEqualTypeOf<'DEVICE_DELETED'>();
    const run = (step: PlugStep | UnplugStep) => {
      if (step.execute === 'device_add')
        expectTypeOf(step.arguments).toEqualTypeOf<Commands['device_add']['args']>();
      if (step.execute === 'device_del') expectTypeOf(step).toEqualTypeOf<DeviceDelStep>();
      // A typed client `execute<K>(command: K, args: Commands[K]['args'])` accepts any step.
      const execute = <K extends keyof Commands>(command: K, args: Commands[K]['args']) => [
        command,
        args,
      ];
      return execute(step.execute, step.arguments);
    };
    expectTypeOf(run).toBeFunction();
  });

  it('a configuration is plain data', () => {
    expectTypeOf<VmConfig['machine']['type']>().toEqualTypeOf<string>();
    expectTypeOf<VmConfig['memory']['size']>().toEqualTypeOf<number>();
  });
});
